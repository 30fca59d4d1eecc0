/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The frontend's static files (stylesheet, pictures): read into memory once at start-up
 * from one folder, then served from memory by exact path. A request can name only a file
 * that was in the folder at start-up, so no path it sends ever reaches the file system.
 */
#ifndef BOUTIQUE_FRONTEND_STATICS_H
#define BOUTIQUE_FRONTEND_STATICS_H

#include <stddef.h>

struct static_file {
	char *url; /* "/static/img/products/x.svg" */
	const char *content_type;
	char *data;
	size_t len;
};

struct statics {
	struct static_file *files;
	size_t count;
};

/* Limits that keep a mistaken --static (a home folder, say) from filling the memory. */
#define STATICS_MAX_FILES 256
#define STATICS_MAX_FILE_BYTES (1u << 20)
#define STATICS_MAX_DEPTH 4

/*
 * Read every regular file under dir (sub-folders to STATICS_MAX_DEPTH; names of
 * letters, digits, '.', '_' and '-' not starting with '.'; symbolic links skipped), each
 * served as prefix + its path under dir. 0, or a negative errno (-E2BIG over a limit);
 * *why gets what failed.
 */
int statics_load(struct statics *s, const char *dir, const char *prefix, char *why, size_t why_cap);

/* The file whose URL is exactly url[0..len), or NULL. */
const struct static_file *statics_find(const struct statics *s, const char *url, size_t len);

void statics_free(struct statics *s);

#endif
