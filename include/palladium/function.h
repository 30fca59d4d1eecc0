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

#ifdef __cplusplus
}
#endif

#endif
