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
	h.version = 2;
	CHECK(pd_msg_validate(&h, 4096, 0) == -EBADMSG);
	h = good();
	h.flags = PD_MSG_F_REQUEST | PD_MSG_F_RESPONSE;
	CHECK(pd_msg_validate(&h, 4096, 0) == -EBADMSG);
	h.flags = 0;
	CHECK(pd_msg_validate(&h, 4096, 0) == -EBADMSG);
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

static void test_meta_garbage(void)
{
	/* Random bytes never read out of bounds (ASan watches) and usually fail. */
	srand(42);
	for (int round = 0; round < 20000; round++) {
		size_t len = (size_t)(rand() % 64);
		uint8_t *buf = malloc(len + 1);
		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)rand();
		if (round % 3 == 0 && len >= 2) {
			buf[0] = 1;
			buf[1] = 0;
		}
		struct pd_meta_entry e;
		size_t cursor = 0;
		int rc, steps = 0;
		while ((rc = pd_meta_next(buf, len, &cursor, &e)) == 1) {
			CHECK(e.name >= (const char *)buf &&
			      e.value + e.value_len <= (const char *)buf + len);
			steps++;
		}
		CHECK(rc == 0 || rc == -EBADMSG);
		(void)pd_meta_check(buf, len);
		(void)pd_meta_find(buf, len, "x", &e);
		free(buf);
	}
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
