/* SPDX-License-Identifier: Apache-2.0 */
/* Loads the cluster file: the shape check, a libcyaml typed load, then whole-file validation. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/config_internal.h"

/* The largest legal cluster is ~100 KiB; this bounds the memory of a parse. */
#define CONFIG_FILE_MAX (1 * PD_MiB)

/*
 * Our own allocator rather than cyaml_mem, so that strings we strdup() as defaults can be
 * freed by cyaml_free() and everything libcyaml allocates can be freed with free().
 */
static void *config_mem(void *ctx, void *ptr, size_t size)
{
	(void)ctx;
	if (size == 0) {
		free(ptr);
		return NULL;
	}
	return realloc(ptr, size);
}

static const cyaml_config_t quiet_cyaml = {
    .log_fn = NULL,
    .mem_fn = config_mem,
    .log_level = CYAML_LOG_ERROR,
    .flags = CYAML_CFG_DEFAULT,
};

/* ---- loading ---- */

/* libcyaml's last word, kept in case it rejects something the libyaml walk let through. */
struct cyaml_capture {
	char message[256];
	struct pd_config_mark mark;
};

static void capture_log(cyaml_log_t level, void *ctx, const char *fmt, va_list args)
{
	struct cyaml_capture *cap = ctx;
	char line[256];
	const char *text = line;
	const char *pos;
	size_t len;

	if (level < CYAML_LOG_ERROR)
		return;
	vsnprintf(line, sizeof(line), fmt, args);
	len = strlen(line);
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == ' '))
		line[--len] = '\0';
	if (strncmp(text, "Load: ", 6) == 0)
		text += 6;
	/* Its backtrace lines read "  in mapping field 'x' (line: 3, column: 7)". */
	pos = strstr(text, "(line: ");
	if (pos != NULL) {
		unsigned line_no, column;

		if (cap->mark.line == 0 &&
		    sscanf(pos, "(line: %u, column: %u)", &line_no, &column) == 2) {
			cap->mark.line = line_no;
			cap->mark.column = column;
		}
		return;
	}
	if (cap->message[0] == '\0' && strncmp(text, "Backtrace", 9) != 0)
		snprintf(cap->message, sizeof(cap->message), "%s", text);
}

static int load_typed(const char *text, size_t len, const cyaml_schema_value_t *schema,
                      struct pd_config **out, struct pd_config_diags *diags)
{
	struct cyaml_capture cap = {.message = ""};
	cyaml_config_t cyaml = quiet_cyaml;
	cyaml_data_t *data = NULL;
	cyaml_err_t err;

	cyaml.log_fn = capture_log;
	cyaml.log_ctx = &cap;
	err = cyaml_load_data((const uint8_t *)text, len, &cyaml, schema, &data, NULL);
	if (err == CYAML_ERR_OOM)
		return -ENOMEM;
	if (err != CYAML_OK || data == NULL) {
		struct pd_config_mark mark =
		    cap.mark.line ? cap.mark : (struct pd_config_mark){1, 1};

		pd_config_diag_add(diags, mark, "%s",
		                   cap.message[0] ? cap.message : cyaml_strerror(err));
		if (data != NULL)
			cyaml_free(&quiet_cyaml, schema, data, 0);
		return -EINVAL;
	}
	*out = data;
	return 0;
}

/* What a file that is not a regular file is, for the error message. */
static const char *file_kind(mode_t mode)
{
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISSOCK(mode))
		return "a socket";
	return "a special file";
}

/*
 * Read the whole file at path. Only a regular file is read: anything else (a FIFO, a
 * device) could block forever or never end, so it is refused with -EINVAL (*mode_out
 * says what it is); a directory with -EISDIR. O_NONBLOCK: opening a FIFO with no
 * writer does not wait.
 */
static int read_file(const char *path, char **text_out, size_t *len_out, mode_t *mode_out)
{
	struct stat st;
	char *text = NULL;
	size_t len = 0, cap = 0;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out_close;
	}
	*mode_out = st.st_mode;
	if (S_ISDIR(st.st_mode)) {
		ret = -EISDIR;
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		goto out_close;
	}
	/* Read to EOF rather than trust st_size: the file may change while it is read. */
	for (;;) {
		ssize_t n;

		if (len == cap) {
			char *grown;

			if (cap >= CONFIG_FILE_MAX) {
				char probe;

				/* Full: fine if this was exactly the end of the file. */
				do
					n = read(fd, &probe, 1);
				while (n < 0 && errno == EINTR);
				if (n == 0)
					break;
				ret = n < 0 ? -errno : -EFBIG;
				goto out_free;
			}
			cap = cap ? cap * 2 : 16 * PD_KiB;
			grown = realloc(text, cap + 1);
			if (grown == NULL) {
				ret = -ENOMEM;
				goto out_free;
			}
			text = grown;
		}
		n = read(fd, text + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out_free;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (text == NULL) {
		text = malloc(1);
		if (text == NULL) {
			ret = -ENOMEM;
			goto out_close;
		}
	}
	text[len] = '\0';
	*text_out = text;
	*len_out = len;
	close(fd);
	return 0;

out_free:
	free(text);
out_close:
	close(fd);
	return ret;
}

int pd_config_load(const char *path, struct pd_config **out, FILE *errs)
{
	struct pd_config_diags diags = {.file = path};
	struct pd_config_index index = {0};
	const cyaml_schema_value_t *schema = pd_config_schema();
	struct pd_config *cfg = NULL;
	char *text = NULL;
	size_t len = 0;
	int ret;

	if (out != NULL)
		*out = NULL;
	if (path == NULL || out == NULL)
		return -EINVAL;

	if (schema == NULL) {
		/* The key table contradicts itself: a bug, reported rather than half-loaded. */
		pd_config_diag_add(&diags, (struct pd_config_mark){0, 0},
		                   "internal error: the table of config keys is inconsistent");
		ret = -EINVAL;
		goto out_print;
	}
	mode_t mode = 0;
	ret = read_file(path, &text, &len, &mode);
	if (ret < 0) {
		char buf[128];

		if (ret == -EINVAL)
			pd_config_diag_add(&diags, (struct pd_config_mark){0, 0},
			                   "cannot read: not a regular file (%s)", file_kind(mode));
		else if (ret == -EFBIG)
			pd_config_diag_add(&diags, (struct pd_config_mark){0, 0},
			                   "cannot read: the file is larger than %" PRIu64 " MiB",
			                   CONFIG_FILE_MAX / PD_MiB);
		else
			pd_config_diag_add(&diags, (struct pd_config_mark){0, 0}, "cannot read: %s",
			                   strerror_r(-ret, buf, sizeof(buf)));
		goto out_print;
	}
	ret = pd_config_yaml_check(text, len, schema, &index, &diags);
	if (ret < 0)
		goto out_index;
	ret = load_typed(text, len, schema, &cfg, &diags);
	if (ret < 0)
		goto out_index;
	cfg->path = strdup(path);
	if (cfg->path == NULL) {
		ret = -ENOMEM;
		goto out_cfg;
	}
	ret = pd_config_validate(cfg, &index, &diags);
	if (ret < 0)
		goto out_cfg;
	if (diags.total > 0) {
		ret = -EINVAL;
		goto out_cfg;
	}
	*out = cfg;
	cfg = NULL;

out_cfg:
	pd_config_free(cfg);
out_index:
	pd_config_index_fini(&index);
	free(text);
out_print:
	if (diags.out_of_memory)
		ret = -ENOMEM;
	if (ret == -ENOMEM && diags.total == 0)
		pd_config_diag_add(&diags, (struct pd_config_mark){0, 0}, "out of memory");
	pd_config_diags_print(&diags, errs);
	pd_config_diags_fini(&diags);
	return ret;
}

void pd_config_free(struct pd_config *cfg)
{
	if (cfg == NULL)
		return;
	/* Not in the schema, so cyaml_free() does not know about it. */
	free(cfg->path);
	cfg->path = NULL;
	cyaml_free(&quiet_cyaml, pd_config_schema(), cfg, 0);
}
