/* SPDX-License-Identifier: Apache-2.0 */
/* Platform answers (text/plain, complete in one h2o_send()) and the route statistics. */
#include <string.h>

#include "common/http_status.h"
#include "ingress/ingress_internal.h"

/* Every answer here is complete in one h2o_send(): nothing to proceed or stop. */
h2o_generator_t ing_final_generator = {NULL, NULL};

static const double bucket_le[NBUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                           0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                           1,      2.5,     5,      10};

const char *ing_reason_phrase(int status)
{
	return pd_http_reason(status);
}

bool ing_is_head(const h2o_req_t *req)
{
	return h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
}

void ing_record(struct ingress *ing, uint32_t route, int status, uint64_t start_ns)
{
	struct ing_route_stats *st = &ing->route_stats[route];
	if (status >= STATUS_MIN && status <= STATUS_MAX)
		st->status[status - STATUS_MIN]++;
	double d = (double)(now_ns() - start_ns) / 1e9;
	int i = 0;
	while (i < NBUCKETS && d > bucket_le[i])
		i++;
	st->bucket[i]++;
	st->count++;
	st->sum += d;
}

/* A platform answer: body (static or in req->pool) as text/plain. */
void ing_send_text(h2o_req_t *req, int status, const char *body, size_t len)
{
	req->res.status = status;
	req->res.reason = ing_reason_phrase(status);
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
	               H2O_STRLIT("text/plain; charset=utf-8"));
	req->res.content_length = len;
	h2o_start_response(req, &ing_final_generator);
	h2o_iovec_t buf = h2o_iovec_init(body, len);
	if (ing_is_head(req))
		h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
	else
		h2o_send(req, &buf, 1, H2O_SEND_STATE_FINAL);
}

/* A platform answer, counted under route. */
void ing_reply(struct ingress *ing, h2o_req_t *req, uint32_t route, uint64_t start_ns, int status,
               const char *body)
{
	ing_send_text(req, status, body, strlen(body));
	ing_record(ing, route, status, start_ns);
}
