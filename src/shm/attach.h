/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The attach protocol between a function process and its node's engine, over a
 * SOCK_SEQPACKET Unix socket. The engine starts the function with PD_ENGINE_SOCKET
 * (abstract socket name, without the leading NUL) in its environment; the function
 * connects and sends a pd_attach_hello; the engine identifies it by SO_PEERCRED (the pid
 * must be one it started) and answers with a pd_attach_reply plus file descriptors
 * (SCM_RIGHTS): [pool memfd, engine eventfd, one eventfd per inst[]].
 * The connection stays open: when either side goes away, the other notices.
 */
#ifndef PD_SHM_ATTACH_H
#define PD_SHM_ATTACH_H

#include <stdint.h>

#include "common/limits.h"
#include "shm/pool.h"

#define PD_ATTACH_MAGIC 0x48435441u /* "ATCH" */
#define PD_ATTACH_VERSION 3u
#define PD_ENGINE_SOCKET_ENV "PD_ENGINE_SOCKET"
#define PD_ATTACH_FIXED_FDS 2

struct pd_attach_hello {
	uint32_t magic;
	uint32_t version;
	int32_t pid;
};

struct pd_attach_route {
	uint16_t route; /* global route index */
	uint16_t chain_len;
	uint32_t timeout_ms;
	uint16_t chain[PD_MAX_CHAIN]; /* global function indexes */
};

/* A function this one may call (functions[].calls), by name and index. */
struct pd_attach_callee {
	uint16_t function; /* global function index */
	char name[PD_NAME_MAX + 1];
};

struct pd_attach_inst {
	uint16_t function; /* global function index */
	uint16_t slot;     /* instance slot in the pool */
};

struct pd_attach_reply {
	uint32_t magic;
	uint32_t version;
	int32_t status; /* 0, or a negative errno: the engine refused */
	uint16_t tenant;
	uint16_t function;
	uint16_t slot; /* this instance's slot */
	uint16_t threads;
	uint64_t spin_ns;        /* the most an idle worker polls */
	uint32_t poll_fixed;     /* 1: poll spin_ns every idle spell (engine.poll: fixed) */
	uint16_t node;           /* this node's index: where replies to its calls go */
	uint16_t max_call_depth; /* engine.max_call_depth */
	struct pd_pool_attr pool;
	uint16_t nroutes;
	uint16_t ninst;
	uint16_t ncallees;
	struct pd_attach_callee callees[PD_MAX_CALLS];
	/* The functions that declare this one in their calls: the only ones whose calls it
	 * serves from this node's instances (a call from another node was checked by the
	 * engine of the caller's node). */
	uint16_t ncallers;
	uint16_t callers[PD_MAX_FUNCTIONS];
	struct pd_attach_route routes[PD_MAX_ROUTES];
	struct pd_attach_inst inst[PD_MAX_INSTANCES];
};

#endif
