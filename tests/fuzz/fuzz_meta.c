/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the message header check and the metadata decoder on any bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shm/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size >= sizeof(struct pd_msg_hdr)) {
		struct pd_msg_hdr h;
		memcpy(&h, data, sizeof(h));
		if (pd_msg_validate(&h, 1u << 20, size) == 0 &&
		    pd_msg_total_len(&h) > (uint64_t)size)
			abort(); /* validation let through a message longer than what came */
	}
	size_t cursor = 0;
	struct pd_meta_entry e;
	int rc;
	while ((rc = pd_meta_next(data, size, &cursor, &e)) == 1) {
		if ((const uint8_t *)e.value + e.value_len > data + size)
			abort();
	}
	(void)pd_meta_check(data, size);
	(void)pd_meta_find(data, size, "content-type", &e);
	return 0;
}
