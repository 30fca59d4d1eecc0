/* SPDX-License-Identifier: Apache-2.0 */
/* Message header validation and the metadata (name/value list) encoding. */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "shm/msg.h"

int pd_msg_validate(const struct pd_msg_hdr *h, uint64_t buf_size, uint64_t received_len)
{
	if (h->magic != PD_MSG_MAGIC || h->version != PD_MSG_VERSION)
		return -EBADMSG;
	unsigned kind = pd_msg_kind(h);
	if (kind != PD_MSG_F_REQUEST && kind != PD_MSG_F_RESPONSE && kind != PD_MSG_F_CALL &&
	    kind != PD_MSG_F_REPLY)
		return -EBADMSG;
	if ((h->flags & ~(PD_MSG_KINDS | PD_MSG_F_ERROR)) != 0 ||
	    ((h->flags & PD_MSG_F_ERROR) && kind != PD_MSG_F_RESPONSE && kind != PD_MSG_F_REPLY))
		return -EBADMSG;
	if ((kind == PD_MSG_F_CALL || kind == PD_MSG_F_REPLY) && h->call_id == 0)
		return -EBADMSG;
	/* 64-bit sum of 32-bit lengths cannot overflow. */
	uint64_t total = pd_msg_total_len(h);
	if (total > buf_size)
		return -EBADMSG;
	if (received_len != 0 && total > received_len)
		return -EBADMSG;
	return 0;
}

void pd_meta_writer_init(struct pd_meta_writer *w, void *base, size_t cap)
{
	w->base = base;
	w->cap = cap;
	w->len = 0;
	w->count = 0;
	w->overflow = false;
}

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, sizeof(v));
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

int pd_meta_add(struct pd_meta_writer *w, const char *name, size_t name_len, const char *value,
                size_t value_len)
{
	if (w->overflow)
		return -ENOSPC;
	size_t start = w->len == 0 ? 2 : w->len;
	size_t need = 6 + name_len + value_len;
	if (name_len > UINT16_MAX || value_len > UINT32_MAX || w->count == UINT16_MAX ||
	    start > w->cap || need > w->cap - start) {
		w->overflow = true;
		return -ENOSPC;
	}
	uint8_t *p = w->base + start;
	put16(p, (uint16_t)name_len);
	put32(p + 2, (uint32_t)value_len);
	memcpy(p + 6, name, name_len);
	if (value_len > 0)
		memcpy(p + 6 + name_len, value, value_len);
	w->len = start + need;
	w->count++;
	put16(w->base, w->count);
	return 0;
}

int64_t pd_meta_finish(struct pd_meta_writer *w)
{
	if (w->overflow)
		return -ENOSPC;
	return (int64_t)w->len;
}

int pd_meta_next(const void *base, size_t len, size_t *cursor, struct pd_meta_entry *e)
{
	const uint8_t *b = base;
	if (len == 0)
		return 0;
	if (len < 2)
		return -EBADMSG;
	size_t pos = *cursor == 0 ? 2 : *cursor;
	if (pos == len)
		return 0;
	if (pos > len || len - pos < 6)
		return -EBADMSG;
	uint16_t nl;
	uint32_t vl;
	memcpy(&nl, b + pos, sizeof(nl));
	memcpy(&vl, b + pos + 2, sizeof(vl));
	if ((uint64_t)nl + vl > len - pos - 6)
		return -EBADMSG;
	e->name = (const char *)b + pos + 6;
	e->name_len = nl;
	e->value = e->name + nl;
	e->value_len = vl;
	*cursor = pos + 6 + nl + vl;
	return 1;
}

int pd_meta_check(const void *base, size_t len)
{
	if (len == 0)
		return 0;
	if (len < 2)
		return -EBADMSG;
	uint16_t count;
	memcpy(&count, base, sizeof(count));
	size_t cursor = 0;
	struct pd_meta_entry e;
	uint32_t seen = 0;
	int rc;
	while ((rc = pd_meta_next(base, len, &cursor, &e)) == 1)
		seen++;
	if (rc < 0 || seen != count)
		return -EBADMSG;
	return 0;
}

int pd_meta_find(const void *base, size_t len, const char *name, struct pd_meta_entry *e)
{
	size_t want = strlen(name);
	size_t cursor = 0;
	int rc;
	while ((rc = pd_meta_next(base, len, &cursor, e)) == 1) {
		if (e->name_len == want && strncasecmp(e->name, name, want) == 0)
			return 1;
	}
	return rc;
}
