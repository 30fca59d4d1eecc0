/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The request table: one slot per request in flight, from admission until its answer,
 * its failure or its timeout. A slot's request id is index | generation << 32; the
 * generation changes on every release, so whatever answers for a released slot is late.
 */
#include <errno.h>

#include "common/log.h"
#include "ingress/ingress_internal.h"

static void on_slot_timeout(h2o_timeout_entry_t *entry)
{
	struct ing_slot *s = PD_CONTAINER_OF(entry, struct ing_slot, timeout);
	ing_slot_fail(s->ing, s, 504, "timeout\n");
}

void ing_slots_init(struct ingress *ing)
{
	for (uint32_t i = 0; i < ing->nslots; i++) {
		struct ing_slot *s = &ing->slots[i];
		s->ing = ing;
		s->timeout.cb = on_slot_timeout;
		ing->free_slots[i] = ing->nslots - 1 - i;
	}
	ing->nfree_slots = ing->nslots;
}

bool ing_slot_available(const struct ingress *ing)
{
	return ing->nfree_slots > 0;
}

/* A free slot for a request of route, whose message is in buf; NULL if the table is full. */
struct ing_slot *ing_slot_alloc(struct ingress *ing, uint32_t route, uint64_t start_ns,
                                struct ing_buf *buf)
{
	if (ing->nfree_slots == 0)
		return NULL;
	struct ing_slot *s = &ing->slots[ing->free_slots[--ing->nfree_slots]];
	s->route = route;
	s->state = SLOT_QUEUED;
	s->start_ns = start_ns;
	s->buf = buf;
	ing->routes[route].tenant->inflight++;
	return s;
}

uint64_t ing_slot_id(const struct ingress *ing, const struct ing_slot *s)
{
	return (uint64_t)(uint32_t)(s - ing->slots) | (uint64_t)s->gen << 32;
}

/*
 * The slot a request id names, if its request is still out (sent, not answered): 0 and
 * *out set; -ENOENT if the slot has moved on (the id is late); -ERANGE if no slot has
 * that index (the id is bad).
 */
int ing_slot_lookup(struct ingress *ing, uint64_t request_id, struct ing_slot **out)
{
	uint32_t idx = (uint32_t)request_id;
	if (idx >= ing->nslots)
		return -ERANGE;
	struct ing_slot *s = &ing->slots[idx];
	if (s->state != SLOT_SENT || s->gen != (uint32_t)(request_id >> 32))
		return -ENOENT;
	*out = s;
	return 0;
}

/* The request's client waits on s (ref lives in req->pool), until timeout at the latest. */
void ing_slot_attach(struct ingress *ing, struct ing_slot *s, h2o_req_t *req, struct req_ref *ref,
                     h2o_timeout_t *timeout)
{
	ref->slot = (uint32_t)(s - ing->slots);
	ref->waiting = true;
	s->ref = ref;
	s->req = req;
	h2o_timeout_link(ing->loop, timeout, &s->timeout);
}

/* The client of ref is gone. Its slot stays taken until the response or the timeout comes. */
void ing_slot_detach(struct ingress *ing, struct req_ref *ref)
{
	if (!ref->waiting)
		return;
	struct ing_slot *s = &ing->slots[ref->slot];
	s->req = NULL;
	s->ref = NULL;
	ref->waiting = false;
}

/* Free a slot: whatever answers for it later is late. */
void ing_slot_release(struct ingress *ing, struct ing_slot *s)
{
	if (h2o_timeout_is_linked(&s->timeout))
		h2o_timeout_unlink(&s->timeout);
	if (h2o_linklist_is_linked(&s->queued)) {
		h2o_linklist_unlink(&s->queued);
		if (s->link != NULL && s->link->backlog_len > 0)
			s->link->backlog_len--;
	}
	if (s->buf != NULL) {
		ing_buf_release(s->buf);
		s->buf = NULL;
	}
	if (s->link != NULL && s->link_epoch == s->link->epoch && s->link->outstanding > 0)
		s->link->outstanding--;
	s->link = NULL;
	ing->routes[s->route].tenant->inflight--;
	if (s->ref != NULL) {
		s->ref->waiting = false;
		s->ref = NULL;
	}
	s->req = NULL;
	s->state = SLOT_FREE;
	s->gen++;
	ing->free_slots[ing->nfree_slots++] = (uint32_t)(s - ing->slots);
}

/* Answer the client of s (if still there) with a platform error, and free s. */
void ing_slot_fail(struct ingress *ing, struct ing_slot *s, int status, const char *body)
{
	h2o_req_t *req = s->req;
	uint32_t route = s->route;
	uint64_t start_ns = s->start_ns;
	ing_slot_release(ing, s);
	if (req != NULL)
		ing_reply(ing, req, route, start_ns, status, body);
}

/* Fail the requests sent on link l while its epoch was epoch; how many there were. */
uint32_t ing_slots_fail_link(struct ingress *ing, const struct ing_link *l, uint32_t epoch,
                             int status, const char *body)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < ing->nslots; i++) {
		struct ing_slot *s = &ing->slots[i];
		if (s->state == SLOT_SENT && s->link == l && s->link_epoch == epoch) {
			n++;
			ing_slot_fail(ing, s, status, body);
		}
	}
	return n;
}

void ing_fail_all(struct ingress *ing, int status, const char *body)
{
	for (uint32_t i = 0; i < ing->nslots; i++)
		if (ing->slots[i].state != SLOT_FREE)
			ing_slot_fail(ing, &ing->slots[i], status, body);
}
