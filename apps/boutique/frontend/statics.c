/* SPDX-License-Identifier: Apache-2.0 */
/* Static files read at start-up, served from memory (statics.h). */
#include "statics.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *content_type_of(const char *name)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
	    {".css", "text/css; charset=utf-8"},
	    {".html", "text/html; charset=utf-8"},
	    {".svg", "image/svg+xml"},
	    {".png", "image/png"},
	    {".jpg", "image/jpeg"},
	    {".ico", "image/x-icon"},
	    {".js", "text/javascript; charset=utf-8"},
	    {".txt", "text/plain; charset=utf-8"},
	};
	const char *dot = strrchr(name, '.');
	for (size_t i = 0; dot != NULL && i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(dot, types[i].ext) == 0)
			return types[i].type;
	return "application/octet-stream";
}

static bool name_ok(const char *name)
{
	if (name[0] == '.' || name[0] == '\0')
		return false;
	for (const char *c = name; *c != '\0'; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-'))
			return false;
	return true;
}

/* Read the regular file name in the folder dirfd (not following a link). */
static int read_file(int dirfd, const char *name, char **data, size_t *len)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		goto close_fd;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		goto close_fd;
	}
	if (st.st_size > (off_t)STATICS_MAX_FILE_BYTES) {
		rc = -E2BIG;
		goto close_fd;
	}
	size_t n = (size_t)st.st_size;
	char *buf = malloc(n > 0 ? n : 1);
	if (buf == NULL) {
		rc = -ENOMEM;
		goto close_fd;
	}
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = r < 0 ? -errno : -EIO; /* shrank while read */
			free(buf);
			goto close_fd;
		}
		got += (size_t)r;
	}
	*data = buf;
	*len = n;
close_fd:
	close(fd);
	return rc;
}

static int walk(struct statics *s, int dirfd, const char *url, int depth, char *why, size_t why_cap)
{
	DIR *d = fdopendir(dirfd);
	if (d == NULL) {
		int rc = -errno;
		close(dirfd);
		snprintf(why, why_cap, "cannot list %s", url);
		return rc;
	}
	int rc = 0;
	struct dirent *e;
	while (rc == 0 && (e = readdir(d)) != NULL) {
		if (!name_ok(e->d_name))
			continue;
		char sub[PATH_MAX];
		if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", url, e->d_name) >= 256)
			continue; /* no URL of ours is this long */
		struct stat st;
		if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			if (depth >= STATICS_MAX_DEPTH)
				continue;
			int fd = openat(dirfd, e->d_name,
			                O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0)
				continue;
			rc = walk(s, fd, sub, depth + 1, why, why_cap);
			continue;
		}
		if (!S_ISREG(st.st_mode))
			continue;
		if (s->count == STATICS_MAX_FILES) {
			snprintf(why, why_cap, "more than %d files", STATICS_MAX_FILES);
			rc = -E2BIG;
			break;
		}
		struct static_file *f = &s->files[s->count];
		rc = read_file(dirfd, e->d_name, &f->data, &f->len);
		if (rc != 0) {
			snprintf(why, why_cap, "cannot read %s", sub);
			break;
		}
		f->url = strdup(sub);
		if (f->url == NULL) {
			free(f->data);
			rc = -ENOMEM;
			break;
		}
		f->content_type = content_type_of(e->d_name);
		s->count++;
	}
	closedir(d);
	return rc;
}

int statics_load(struct statics *s, const char *dir, const char *prefix, char *why, size_t why_cap)
{
	*s = (struct statics){0};
	s->files = calloc(STATICS_MAX_FILES, sizeof(*s->files));
	if (s->files == NULL)
		return -ENOMEM;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		int rc = -errno;
		snprintf(why, why_cap, "cannot open %s", dir);
		statics_free(s);
		return rc;
	}
	int rc = walk(s, fd, prefix, 0, why, why_cap);
	if (rc != 0)
		statics_free(s);
	return rc;
}

const struct static_file *statics_find(const struct statics *s, const char *url, size_t len)
{
	for (size_t i = 0; i < s->count; i++)
		if (strlen(s->files[i].url) == len && memcmp(s->files[i].url, url, len) == 0)
			return &s->files[i];
	return NULL;
}

void statics_free(struct statics *s)
{
	for (size_t i = 0; i < s->count; i++) {
		free(s->files[i].url);
		free(s->files[i].data);
	}
	free(s->files);
	*s = (struct statics){0};
}
