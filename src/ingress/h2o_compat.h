/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every place where the ingress relies on more than h2o's public API, in one file. h2o
 * marks private members with a leading underscore; each access below says why no public
 * call does the job. All were checked against h2o 2.2.5 (Debian's libh2o-evloop
 * 2.2.5+dfsg2, library version 0.13.5), which src/ingress/meson.build requires: a newer
 * h2o means reading each one again against its source.
 */
#ifndef PD_INGRESS_H2O_COMPAT_H
#define PD_INGRESS_H2O_COMPAT_H

#include <stdbool.h>
#include <stdlib.h>

#include <h2o.h>

#if H2O_VERSION_MAJOR != 2 || H2O_VERSION_MINOR != 2
#error "src/ingress/h2o_compat.h was checked against h2o 2.2 only: check each access again"
#endif

/*
 * 1. Does the loop hold sockets whose callbacks h2o has yet to run? Answers written
 * outside h2o_evloop_run() (from the fabric's callbacks) leave them queued on these two
 * lists, and h2o_evloop_run() runs them only after its epoll_wait: the loop must not
 * sleep meanwhile. h2o 2.2 has no public call that says so (h2o_evloop_run(loop, 0) would
 * run them, at the price of one more epoll_wait on every turn).
 */
static inline bool ing_h2o_loop_has_pending(const h2o_evloop_t *loop)
{
	return loop->_pending_as_server != NULL || loop->_pending_as_client != NULL;
}

/*
 * 2. h2o_context_request_shutdown() links ctx->http2._graceful_shutdown_timeout (it
 * re-sends GOAWAY) into ctx->one_sec_timeout and nothing unlinks it: h2o 2.2's
 * h2o_context_dispose() would then fail its assertion that one_sec_timeout is empty.
 * There is no public call to cancel it (later h2o versions unlink it in
 * h2o_context_dispose() themselves).
 */
static inline void ing_h2o_cancel_goaway_timer(h2o_context_t *ctx)
{
	if (h2o_timeout_is_linked(&ctx->http2._graceful_shutdown_timeout))
		h2o_timeout_unlink(&ctx->http2._graceful_shutdown_timeout);
}

/*
 * 3. h2o_context_dispose(), which is public. In h2o 2.2's evloop build it calls
 * h2o_multithread_destroy_queue(), which frees what the queue holds but not the queue
 * itself (ctx->queue, a public member): freed here, else every run leaks it.
 */
static inline void ing_h2o_context_dispose(h2o_context_t *ctx)
{
	h2o_context_dispose(ctx);
	free(ctx->queue);
}

/*
 * 4. The raw request head of an HTTP/1 request: false over HTTP/2 (an h2c upgrade
 * included). h2o 2.2 says nowhere which protocol a connection speaks; of its connection
 * types, only HTTP/1's fills the public callbacks->log_.http1.request_index. And its
 * HTTP/1 parser consumes the head from the socket's input buffer only once the answer is
 * written: while the handler runs, the head is still at the start of sock->input (a
 * chunked body is decoded after it).
 */
static inline bool ing_h2o_http1_head(h2o_req_t *req, h2o_iovec_t *head)
{
	const h2o_conn_callbacks_t *cb = req->conn->callbacks;
	if (req->version >= 0x200 || cb->log_.http1.request_index == NULL || cb->get_socket == NULL)
		return false;
	h2o_socket_t *sock = cb->get_socket(req->conn);
	if (sock == NULL)
		return false;
	*head = h2o_iovec_init(sock->input->bytes, sock->input->size);
	return true;
}

#endif
