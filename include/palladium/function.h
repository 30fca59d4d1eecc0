/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Palladium function SDK: the only header a function author needs.
 *
 * A function is an ordinary program. Its main() calls pd_serve() with a handler; the
 * runtime attaches to the node's engine, and for each request calls the handler with
 * the input (read in place from the tenant's shared pool) and a response whose body is
 * written straight into a pool buffer. The runtime then forwards the response to the
 * next function of the route's chain, or back to the client when the chain ends.
 *
 * Threading: with `threads: N` in the config, the handler runs on N threads at once; a
 * pd_request and pd_response belong to the one call they were passed to. Pointers from
 * them are valid only until the handler returns.
 */
#ifndef PALLADIUM_FUNCTION_H
#define PALLADIUM_FUNCTION_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PD_API __attribute__((visibility("default")))

typedef struct pd_request pd_request;
typedef struct pd_response pd_response;

/*
 * A handler: read req, write res, return 0. Returning a non-zero value without having
 * set an error status answers 500. An error status (>= 400) ends the chain: the client
 * gets that status and body at once, the remaining functions do not run.
 */
typedef int (*pd_handler)(const pd_request *req, pd_response *res, void *arg);

/*
 * Run the function: attach to the engine (the engine passes the address in the
 * environment when it starts the process), serve requests until the engine asks it to
 * stop (SIGTERM), and return the exit status for main(): 0 after a clean stop, 1 if it
 * could not attach or could not start all its handler threads (the reason is printed
 * on stderr). arg is passed to every call.
 */
PD_API int pd_serve(int argc, char **argv, pd_handler handler, void *arg);

/* ---- The request (read-only, in place in shared memory) ---- */

/* The body: *len gets its length. Never NULL (an empty body is a valid pointer). */
PD_API const char *pd_request_body(const pd_request *req, size_t *len);
/* The HTTP method ("GET", "POST", ...), path ("/shout/x") and query ("a=1", or "").
 * *len (if not NULL) gets the length; the strings are NOT NUL-terminated. */
PD_API const char *pd_request_method(const pd_request *req, size_t *len);
PD_API const char *pd_request_path(const pd_request *req, size_t *len);
PD_API const char *pd_request_query(const pd_request *req, size_t *len);
/* A request header by name (case-insensitive), NULL if absent; not NUL-terminated. */
PD_API const char *pd_request_header(const pd_request *req, const char *name, size_t *len);
/* Which hop of the chain this is (0 = first) and how many hops the chain has. */
PD_API unsigned pd_request_hop(const pd_request *req);
PD_API unsigned pd_request_chain_length(const pd_request *req);

/* ---- The response (written in place into a pool buffer) ---- */

/*
 * Room for the body: returns a pointer to at least n writable bytes inside a pool
 * buffer, or NULL if n is more than a buffer holds (answer 413 then, see below) or the
 * pool has no free buffer (the platform answers 503 for you if you then return an
 * error). Calling it again returns the same start with room for the new n.
 */
PD_API char *pd_response_reserve(pd_response *res, size_t n);
/*
 * How many bytes the body can hold at most, now. The buffer holds the body, the request
 * metadata when the message goes on to another function of the chain, and the response
 * headers: each header added leaves less room for the body.
 */
PD_API size_t pd_response_capacity(const pd_response *res);
/* Set the body length to n (<= the last reserve). Returns 0 or -1 if n is too large. */
PD_API int pd_response_commit(pd_response *res, size_t n);
/* Copy n bytes to the end of the body (a convenience: reserve + memcpy + commit). */
PD_API int pd_response_append(pd_response *res, const void *data, size_t n);
/*
 * Pass the request body on unchanged as the response body, without a copy and without
 * a new buffer (for functions that inspect, route or annotate). Headers and status may
 * still be set. A later pd_response_reserve() cancels it. Returns 0.
 */
PD_API int pd_response_forward(pd_response *res);
/* HTTP status of the final response (default 200). */
PD_API void pd_response_set_status(pd_response *res, int status);
/*
 * Add a response header. Returns 0, or -1 if the name or value is invalid (empty name,
 * characters not allowed in HTTP) or there is no room left in the buffer beside the
 * body reserved so far (or the forwarded body); the answer then goes out without it.
 */
PD_API int pd_response_set_header(pd_response *res, const char *name, const char *value);
/*
 * Answer with an error: the status (400..599) and message become the response, the
 * body written so far is discarded, and the chain stops. Returns 0 so that a handler
 * can `return pd_response_error(res, 413, "too large");`.
 */
PD_API int pd_response_error(pd_response *res, int status, const char *message);

/* ---- Calls: a handler calls other functions of its tenant ----
 *
 * A handler may call any function named in its `calls:` list in the cluster file, as
 * often as it likes, and start several calls before it waits for any: they run in
 * parallel on whatever instances and nodes serve the callees. The callee sees an
 * ordinary request (pd_request_*: body, method, path, query, headers; hop 0 of a chain
 * of 1) and answers with an ordinary response; its status, headers and body come back
 * to the caller. Nothing is copied on a node: the request body is written in place into
 * a pool buffer that the callee reads, and the answer is read in place from the buffer
 * the callee wrote.
 *
 *   pd_call *c = pd_call_start(req, "price");          // a name from `calls:`
 *   pd_call_append(c, "{}", 2);                        // or reserve + write + commit
 *   pd_call_send(c);
 *   if (pd_call_wait(c) == 200) {
 *       size_t n;
 *       const char *body = pd_call_body(c, &n);        // in place, until release
 *       ...
 *   }
 *   pd_call_release(c);
 *
 * A call belongs to the handler thread that started it: start, send, wait for and release
 * it on that thread, while the handler runs.
 *
 * A call cannot outlive the request it serves: it carries the time left of that
 * request's deadline (the route's timeout, less what has passed), which a per-call
 * timeout may only shorten. Every call ends with a status:
 *   - the callee's own status (200, or the error it answered, with its body);
 *   - 403  the function is not in this function's `calls:` list (never sent);
 *   - 502  the callee crashed or no node running it is reachable;
 *   - 503  no free buffer, too many calls out, or the callee's queue is full;
 *   - 504  the deadline passed first (a later answer is dropped and counted);
 *   - 508  the call would be deeper than engine.max_call_depth (never sent).
 * A failed call has a short text body saying why. Calls the handler has not released
 * when it returns are released by the runtime.
 */
typedef struct pd_call pd_call;

/*
 * Start a call to the function named `function` for the request req being handled.
 * Returns the call, to be filled and sent; NULL only when the process is out of memory.
 * A call that cannot be made (403, 503, 508 above) comes back already finished:
 * pd_call_send does nothing for it and pd_call_status tells why.
 */
PD_API pd_call *pd_call_start(const pd_request *req, const char *function);
/*
 * The request body, written in place like a response body: room for n bytes (NULL when
 * n is more than a buffer holds with the headers set, or the call already finished),
 * the room left, the length written, and a copying convenience.
 */
PD_API char *pd_call_reserve(pd_call *call, size_t n);
PD_API size_t pd_call_capacity(const pd_call *call);
PD_API int pd_call_commit(pd_call *call, size_t n);
PD_API int pd_call_append(pd_call *call, const void *data, size_t n);
/* The callee's method (default "POST") and path (default "/"), query without '?'
 * (NULL: none), and request headers. 0, or -1 if invalid or out of room. */
PD_API int pd_call_set_method(pd_call *call, const char *method);
PD_API int pd_call_set_path(pd_call *call, const char *path, const char *query);
PD_API int pd_call_set_header(pd_call *call, const char *name, const char *value);
/* Give up on the call after timeout_ms (504) if that is sooner than the request's
 * deadline. 0, or -1 after pd_call_send. */
PD_API int pd_call_set_timeout(pd_call *call, unsigned timeout_ms);
/* Send the call. 0, or -1 if it finished instead (its status says why). */
PD_API int pd_call_send(pd_call *call);
/* Wait until the call has finished; returns its status. */
PD_API int pd_call_wait(pd_call *call);
/* Wait until every call of calls[0..n-1] (NULL entries are skipped) has finished.
 * Returns 0. */
PD_API int pd_call_wait_all(pd_call *const *calls, size_t n);
/* Wait until one of calls[0..n-1] (NULL entries are skipped) has finished and return its
 * index (the lowest, if several have); -1 if every entry is NULL. Set an entry to NULL
 * once it is dealt with to wait for the others. */
PD_API int pd_call_wait_any(pd_call *const *calls, size_t n);
/* The call's HTTP status once it has finished; 0 while it has not (not sent, or out). */
PD_API int pd_call_status(const pd_call *call);
/* The answer's body, in place in the pool (never NULL; empty before the call finished),
 * valid until pd_call_release. */
PD_API const char *pd_call_body(const pd_call *call, size_t *len);
/* A header of the answer by name (case-insensitive), NULL if absent; not NUL-terminated. */
PD_API const char *pd_call_header(const pd_call *call, const char *name, size_t *len);
/* Free the call and its answer's buffer. A call still out is abandoned: its answer, if
 * one ever comes, is dropped. NULL is allowed. */
PD_API void pd_call_release(pd_call *call);
/* The blocking one-liner: start, copy len bytes of body, send, wait. Returns the
 * finished call (read it, then release it); NULL only when out of memory. */
PD_API pd_call *pd_call_run(const pd_request *req, const char *function, const void *body,
                            size_t len);

#ifdef __cplusplus
}
#endif

#endif
