/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the message header checks and the metadata encoding. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "shm/msg.h"
#include "unit.h"

static struct pd_msg_hdr good(void)
{
	return (struct pd_msg_hdr){.magic = PD_MSG_MAGIC,
	                           .version = PD_MSG_VERSION,
	                           .flags = PD_MSG_F_REQUEST,
	                           .payload_len = 100,
	                           .req_meta_len = 20};
}

static void test_header_checks(void)
{
	struct pd_msg_hdr h = good();
	CHECK(pd_msg_validate(&h, 4096, 0) == 0);
	CHECK(pd_msg_validate(&h, 4096, 184) == 0);
	CHECK(pd_msg_validate(&h, 4096, 183) == -EBADMSG); /* shorter than it claims */
	CHECK(pd_msg_validate(&h, 183, 0) == -EBADMSG);    /* past the buffer */
	h.magic ^= 1;
	CHECK(pd_msg_validate(&h, 4096, 0) == -EBADMSG);
	h = good();
	h.version = PD_MSG_VERSION - 1; /* the format before calls */
	CHECK(pd_msg_validate(&h, 4096, 0) == -EBADMSG);
	h.version = PD_MSG_VERSION + 1;
	CHECK(pd_msg_validate(&h, 4096, 0) == -EBADMSG);
	h = good();
	h.flags = PD_MSG_F_REQUEST | PD_MSG_F_RESPONSE;
	CHECK(pd_msg_validate(&h, 4096, 0) == -EBADMSG);
	h.flags = 0;
	CHECK(pd_msg_validate(&h, 4096, 0) == -EBADMSG);
	/* Exactly one kind, among four. */
	static const uint16_t kinds[] = {PD_MSG_F_REQUEST, PD_MSG_F_RESPONSE, PD_MSG_F_CALL,
	                                 PD_MSG_F_REPLY};
	for (unsigned a = 0; a < 4; a++) {
		h = good();
		h.call_id = 7;
		h.flags = kinds[a];
		CHECK(pd_msg_validate(&h, 4096, 0) == 0);
		for (unsigned b = 0; b < 4; b++) {
			h.flags = kinds[a] | kinds[b];
			CHECK(pd_msg_validate(&h, 4096, 0) == (a == b ? 0 : -EBADMSG));
		}
		/* ERROR only on what answers: a response or a reply. */
		h.flags = kinds[a] | PD_MSG_F_ERROR;
		CHECK(pd_msg_validate(&h, 4096, 0) ==
		      (kinds[a] == PD_MSG_F_RESPONSE || kinds[a] == PD_MSG_F_REPLY ? 0 : -EBADMSG));
	}
	/* An unknown flag, and a call or reply without a call id. */
	h = good();
	h.flags = PD_MSG_F_REQUEST | (1u << 5);
	CHECK(pd_msg_validate(&h, 4096, 0) == -EBADMSG);
	h.flags = PD_MSG_F_REQUEST | (1u << 15);
	CHECK(pd_msg_validate(&h, 4096, 0) == -EBADMSG);
	h.flags = PD_MSG_F_CALL;
	h.call_id = 0;
	CHECK(pd_msg_validate(&h, 4096, 0) == -EBADMSG);
	h.flags = PD_MSG_F_REPLY;
	CHECK(pd_msg_validate(&h, 4096, 0) == -EBADMSG);
	h.call_id = 1;
	CHECK(pd_msg_validate(&h, 4096, 0) == 0);
	h = good();
	h.payload_len = UINT32_MAX;
	h.req_meta_len = UINT32_MAX;
	h.resp_meta_len = UINT32_MAX;
	CHECK(pd_msg_validate(&h, UINT32_MAX, 0) == -EBADMSG); /* no overflow */
}

static void test_meta_roundtrip(void)
{
	uint8_t buf[256];
	struct pd_meta_writer w;
	pd_meta_writer_init(&w, buf, sizeof(buf));
	CHECK(pd_meta_finish(&w) == 0);
	CHECK(pd_meta_add(&w, ":method", 7, "POST", 4) == 0);
	CHECK(pd_meta_add(&w, ":path", 5, "/shout", 6) == 0);
	CHECK(pd_meta_add(&w, "Content-Type", 12, "text/plain", 10) == 0);
	CHECK(pd_meta_add(&w, "x-empty", 7, "", 0) == 0);
	int64_t len = pd_meta_finish(&w);
	CHECK(len > 0);
	CHECK(pd_meta_check(buf, (size_t)len) == 0);
	struct pd_meta_entry e;
	CHECK(pd_meta_find(buf, (size_t)len, "content-type", &e) == 1);
	CHECK(e.value_len == 10 && memcmp(e.value, "text/plain", 10) == 0);
	CHECK(pd_meta_find(buf, (size_t)len, "x-empty", &e) == 1 && e.value_len == 0);
	CHECK(pd_meta_find(buf, (size_t)len, "absent", &e) == 0);
	size_t cursor = 0;
	int count = 0;
	while (pd_meta_next(buf, (size_t)len, &cursor, &e) == 1)
		count++;
	CHECK(count == 4);
	CHECK(pd_meta_check(buf, 0) == 0);
}

static void test_meta_overflow(void)
{
	uint8_t buf[32];
	struct pd_meta_writer w;
	pd_meta_writer_init(&w, buf, sizeof(buf));
	CHECK(pd_meta_add(&w, "a", 1, "0123456789", 10) == 0);
	CHECK(pd_meta_add(&w, "b", 1, "0123456789", 10) == -ENOSPC);
	CHECK(pd_meta_add(&w, "c", 1, "", 0) == -ENOSPC); /* sticky */
	CHECK(pd_meta_finish(&w) == -ENOSPC);
}

/*
 * What pd_meta_next must do with len bytes at b, walked here independently: entries
 * (u16 name length, u32 value length, name, value) after a u16 count. Returns 0 (ends
 * exactly at len) or -EBADMSG, and the number of whole entries before that in *steps.
 */
static int model_walk(const uint8_t *b, size_t len, int *steps, size_t *ends, int max_ends)
{
	*steps = 0;
	if (len == 0)
		return 0;
	if (len < 2)
		return -EBADMSG;
	size_t pos = 2;
	for (;;) {
		if (pos == len)
			return 0;
		if (len - pos < 6)
			return -EBADMSG;
		size_t nl = (size_t)b[pos] | (size_t)b[pos + 1] << 8;
		size_t vl = (size_t)b[pos + 2] | (size_t)b[pos + 3] << 8 |
		            (size_t)b[pos + 4] << 16 | (size_t)b[pos + 5] << 24;
		if (nl + vl > len - pos - 6)
			return -EBADMSG;
		if (*steps < max_ends)
			ends[*steps] = pos + 6;
		pos += 6 + nl + vl;
		(*steps)++;
	}
}

static void test_meta_garbage(void)
{
	/* Random bytes: the iterator stops where the encoding says, with the exact result,
	 * never reading out of bounds (ASan watches). */
	srand(42);
	int ended_ok = 0, ended_bad = 0, with_entries = 0;
	for (int round = 0; round < 20000; round++) {
		size_t len = (size_t)(rand() % 64);
		uint8_t *buf = malloc(len + 1);
		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)rand();
		if (round % 3 == 0 && len >= 2) {
			buf[0] = 1;
			buf[1] = 0;
		}
		if (round % 5 == 0 && len >= 8) { /* a first entry that fits */
			size_t room = len - 8;
			buf[2] = (uint8_t)(room / 2);
			buf[3] = 0;
			uint32_t vl = (uint32_t)(room - room / 2 - (round % 2) * (room > 0));
			memcpy(buf + 4, &vl, sizeof(vl)); /* the model reads it little-endian */
		}
		int want_steps;
		size_t ends[64];
		int want = model_walk(buf, len, &want_steps, ends, 64);
		struct pd_meta_entry e;
		size_t cursor = 0;
		int rc, steps = 0;
		while ((rc = pd_meta_next(buf, len, &cursor, &e)) == 1) {
			CHECK(steps < want_steps && e.name == (const char *)buf + ends[steps]);
			CHECK(e.name >= (const char *)buf &&
			      e.value + e.value_len <= (const char *)buf + len);
			steps++;
			if (steps > 64)
				break;
		}
		CHECK(rc == want);
		CHECK(steps == want_steps);
		uint16_t count = 0;
		if (len >= 2)
			memcpy(&count, buf, sizeof(count));
		int want_check = want == 0 && (len == 0 || count == want_steps) ? 0 : -EBADMSG;
		CHECK(pd_meta_check(buf, len) == want_check);
		int want_found = want; /* 1 if an entry before the end is named x or X */
		for (int i = 0; i < want_steps && i < 64; i++) {
			size_t at = ends[i];
			if (buf[at - 6] == 1 && buf[at - 5] == 0 && (buf[at] | 0x20) == 'x') {
				want_found = 1;
				break;
			}
		}
		CHECK(pd_meta_find(buf, len, "x", &e) == want_found);
		ended_ok += want == 0;
		ended_bad += want != 0;
		with_entries += want_steps > 0;
		free(buf);
	}
	/* The rounds cover both ends, and entries that parse. */
	CHECK(ended_ok > 0 && ended_bad > 0 && with_entries > 0);
	uint8_t lying[8] = {5, 0, 1, 0, 200, 0, 0, 0}; /* value length past the end */
	CHECK(pd_meta_check(lying, sizeof(lying)) == -EBADMSG);
}

int main(void)
{
	RUN(test_header_checks);
	RUN(test_meta_roundtrip);
	RUN(test_meta_overflow);
	RUN(test_meta_garbage);
	return SUMMARY("meta");
}
