/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The engine's transmit pacer: a token bucket in bytes that caps what a node sends per
 * second (engine.link_rate). An RDMA NIC has a line rate of its own and its send queue
 * fills when the engine offers more; the tcp provider on loopback has none (a send
 * completes as soon as the kernel has the bytes), so without a cap the weighted
 * scheduler never has a backlog to order. With a cap below what the node can push, the
 * pacer is the bottleneck and the scheduler decides the tenants' shares of it.
 *
 * A message may take the bucket below zero (a message is never split or held back for
 * being large); the next one waits until the bucket is positive again.
 */
#ifndef PD_ENGINE_PACER_H
#define PD_ENGINE_PACER_H

#include <stdbool.h>
#include <stdint.h>

struct pd_pacer {
	uint64_t rate;  /* bytes per second; 0 = no cap */
	int64_t burst;  /* the most the bucket holds, bytes */
	int64_t tokens; /* may be negative after a large message */
	uint64_t last_ns;
};

/* rate 0 makes a pacer that never holds anything back. */
void pd_pacer_init(struct pd_pacer *p, uint64_t rate, uint64_t burst, uint64_t now_ns);

/* May a message go now? */
bool pd_pacer_ready(struct pd_pacer *p, uint64_t now_ns);

/*
 * May a short message of a tenant that was idle go although the bucket is empty? A NIC
 * interleaves the packets of several messages, so a short one does not wait for the
 * end of a long one; here it goes at once and its bytes are owed, up to one burst.
 */
bool pd_pacer_may_overdraw(struct pd_pacer *p, uint64_t now_ns);

/* A message of n bytes went. */
void pd_pacer_charge(struct pd_pacer *p, uint64_t n);

/* Nanoseconds until pd_pacer_ready() will be true (0 if it is now). */
uint64_t pd_pacer_wait_ns(const struct pd_pacer *p, uint64_t now_ns);

#endif
