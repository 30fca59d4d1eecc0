/* SPDX-License-Identifier: Apache-2.0 */
/* A tenant's registered area: its buffers, their free stack, the receives posted from it. */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "common/log.h"
#include "ingress/ingress_internal.h"

struct ing_buf *ing_buf_get(struct ing_tenant *t)
{
	if (t->nfree == 0)
		return NULL;
	struct ing_buf *b = &t->bufs[t->free_stack[--t->nfree]];
	b->state = BUF_FILLED;
	return b;
}

/* Back on the free stack (a receive cancelled, or taken while closing). */
void ing_buf_push_free(struct ing_buf *b)
{
	struct ing_tenant *t = b->tenant;
	b->state = BUF_FREE;
	t->free_stack[t->nfree++] = (uint32_t)(b - t->bufs);
}

static int buf_post(struct ing_buf *b)
{
	struct ing_tenant *t = b->tenant;
	b->state = BUF_POSTED;
	int rc = pd_fabric_rx_post(t->rx, t->mr, b->data, t->buf_size, b);
	if (rc < 0) {
		t->ing->stats.post_failures++;
		ing_buf_push_free(b);
	}
	return rc;
}

/* A buffer is the ingress's again: it pays a receive still owed, or goes back to the free list. */
void ing_buf_release(struct ing_buf *b)
{
	struct ing_tenant *t = b->tenant;
	if (t->owed_posts > 0 && !t->ing->closing && buf_post(b) == 0) {
		t->owed_posts--;
		return;
	}
	if (b->state != BUF_FREE)
		ing_buf_push_free(b);
}

/*
 * One receive is due for a message received into a buffer that stays busy (a response
 * being written): post another buffer now so that the peer's credit comes back at once.
 */
void ing_rx_replace(struct ing_tenant *t)
{
	struct ing_buf *b = ing_buf_get(t);
	if (b == NULL || buf_post(b) != 0)
		t->owed_posts++;
}

/* The same buffer goes back to the receive context (message dropped). */
void ing_rx_repost(struct ing_buf *b)
{
	if (buf_post(b) != 0)
		b->tenant->owed_posts++;
}

/* ---- the area ------------------------------------------------------------------------ */

static uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/*
 * The tenant's registered area: send buffers for its requests in flight and the receives
 * backing the credits of its links (all posted here). -errno; what is half set up is
 * undone by ing_bufs_close (and pd_fabric_close for the fabric's part).
 */
int ing_bufs_open(struct ingress *ing, struct ing_tenant *t)
{
	const struct pd_config *cfg = ing->cfg;
	uint32_t nsend = min_u32(
	    t->max_inflight > UINT32_MAX / 2 ? UINT32_MAX : 2 * t->max_inflight, SEND_BUFS_CAP);
	t->rx_depth = min_u32(t->max_inflight, RX_DEPTH_CAP) + 2 * cfg->nodes_count;
	if (t->rx_depth < PD_FABRIC_CREDITS_MIN * t->nlinks)
		t->rx_depth = PD_FABRIC_CREDITS_MIN * t->nlinks; /* every link gets its minimum */
	t->nbufs = nsend + t->rx_depth;
	t->region_len = (size_t)t->nbufs * t->buf_size;
	void *p = mmap(NULL, t->region_len, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		int err = -errno;
		PD_LOG_ERR(LOG_COMP, err, "mmap of %zu bytes for tenant %s", t->region_len,
		           t->cfg->name);
		return err;
	}
	t->region = p;
	t->bufs = calloc(t->nbufs, sizeof(*t->bufs));
	t->free_stack = calloc(t->nbufs, sizeof(*t->free_stack));
	if (t->bufs == NULL || t->free_stack == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < t->nbufs; i++) {
		t->bufs[i].tenant = t;
		t->bufs[i].data = t->region + (size_t)i * t->buf_size;
		t->bufs[i].state = BUF_FREE;
		t->free_stack[t->nfree++] = t->nbufs - 1 - i;
	}
	int rc = pd_fabric_mr_reg(ing->fab, t->region, t->region_len, &t->mr);
	if (rc < 0) {
		PD_LOG_ERR(LOG_COMP, rc, "pd_fabric_mr_reg for tenant %s", t->cfg->name);
		return rc;
	}
	rc = pd_fabric_rx_create(ing->fab, (uint16_t)t->index, t->rx_depth, &t->rx);
	if (rc < 0) {
		PD_LOG_ERR(LOG_COMP, rc, "pd_fabric_rx_create for tenant %s", t->cfg->name);
		return rc;
	}
	for (uint32_t i = 0; i < t->rx_depth; i++) {
		rc = buf_post(ing_buf_get(t));
		if (rc < 0) {
			PD_LOG_ERR(LOG_COMP, rc, "pd_fabric_rx_post for tenant %s", t->cfg->name);
			return rc;
		}
	}
	return 0;
}

/* The area and its tables (the fabric's registration of it went with pd_fabric_close). */
void ing_bufs_close(struct ing_tenant *t)
{
	if (t->region != NULL)
		munmap(t->region, t->region_len);
	t->region = NULL;
	free(t->bufs);
	free(t->free_stack);
	t->bufs = NULL;
	t->free_stack = NULL;
}
