/* SPDX-License-Identifier: Apache-2.0 */
/* The ingress's admin listener: GET /healthz and GET /metrics (Prometheus text format). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "ingress/ingress_internal.h"

static const char *const bucket_names[NBUCKETS] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05",   "0.1",     "0.25",   "0.5",   "1",      "2.5",   "5",    "10"};

static const char *const reject_names[REJECT_MAX] = {"inflight", "rate", "no_buffer", "no_engine"};

/* A label value, escaped as the exposition format wants. */
static void put_label(FILE *f, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			fputc('\\', f), fputc(*v, f);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

static void put_route_label(FILE *f, const struct ingress *ing, uint32_t r)
{
	fputs("route=\"", f);
	put_label(f, r < ing->nroutes ? ing->routes[r].cfg->path : "none");
	fputc('"', f);
}

static void metrics_routes(FILE *f, const struct ingress *ing)
{
	fputs("# HELP palladium_ingress_requests_total HTTP requests answered by the ingress, by "
	      "route and status (route=\"none\": no route matched).\n"
	      "# TYPE palladium_ingress_requests_total counter\n",
	      f);
	for (uint32_t r = 0; r <= ing->nroutes; r++) {
		const struct ing_route_stats *st = &ing->route_stats[r];
		for (int s = STATUS_MIN; s <= STATUS_MAX; s++) {
			if (st->status[s - STATUS_MIN] == 0)
				continue;
			fputs("palladium_ingress_requests_total{", f);
			put_route_label(f, ing, r);
			fprintf(f, ",status=\"%d\"} %lu\n", s,
			        (unsigned long)st->status[s - STATUS_MIN]);
		}
	}
	fputs("# HELP palladium_ingress_request_duration_seconds Time from admission to the "
	      "response, by route.\n"
	      "# TYPE palladium_ingress_request_duration_seconds histogram\n",
	      f);
	for (uint32_t r = 0; r <= ing->nroutes; r++) {
		const struct ing_route_stats *st = &ing->route_stats[r];
		uint64_t cum = 0;
		for (int i = 0; i <= NBUCKETS; i++) {
			cum += st->bucket[i];
			fputs("palladium_ingress_request_duration_seconds_bucket{", f);
			put_route_label(f, ing, r);
			fprintf(f, ",le=\"%s\"} %lu\n", i < NBUCKETS ? bucket_names[i] : "+Inf",
			        (unsigned long)cum);
		}
		fputs("palladium_ingress_request_duration_seconds_sum{", f);
		put_route_label(f, ing, r);
		fprintf(f, "} %.9f\n", st->sum);
		fputs("palladium_ingress_request_duration_seconds_count{", f);
		put_route_label(f, ing, r);
		fprintf(f, "} %lu\n", (unsigned long)st->count);
	}
}

static void metrics_tenants(FILE *f, const struct ingress *ing)
{
	fputs("# HELP palladium_ingress_inflight Requests admitted and not yet answered.\n"
	      "# TYPE palladium_ingress_inflight gauge\n",
	      f);
	for (uint32_t t = 0; t < ing->ntenants; t++) {
		fputs("palladium_ingress_inflight{tenant=\"", f);
		put_label(f, ing->tenants[t].cfg->name);
		fprintf(f, "\"} %u\n", ing->tenants[t].inflight);
	}
	fputs("# HELP palladium_ingress_rejected_total Requests refused by admission control.\n"
	      "# TYPE palladium_ingress_rejected_total counter\n",
	      f);
	for (uint32_t t = 0; t < ing->ntenants; t++)
		for (int r = 0; r < REJECT_MAX; r++) {
			fputs("palladium_ingress_rejected_total{tenant=\"", f);
			put_label(f, ing->tenants[t].cfg->name);
			fprintf(f, "\",reason=\"%s\"} %lu\n", reject_names[r],
			        (unsigned long)ing->tenants[t].rejected[r]);
		}
	fprintf(f,
	        "# HELP palladium_ingress_held_rejections 429 answers waiting out "
	        "ingress.reject_delay.\n"
	        "# TYPE palladium_ingress_held_rejections gauge\n"
	        "palladium_ingress_held_rejections %u\n",
	        ing->nheld_rejects);
	fputs("# HELP palladium_ingress_link_up Fabric link to a hop-0 node for a tenant is up.\n"
	      "# TYPE palladium_ingress_link_up gauge\n",
	      f);
	for (uint32_t i = 0; i < ing->nlinks; i++) {
		const struct ing_link *l = &ing->links[i];
		fputs("palladium_ingress_link_up{node=\"", f);
		put_label(f, ing->cfg->nodes[l->node_idx].name);
		fputs("\",tenant=\"", f);
		put_label(f, l->tenant->cfg->name);
		fprintf(f, "\"} %d\n", l->up ? 1 : 0);
	}
}

static const char *const pause_names[PAUSE_MAX] = {"limit", "no_fd", "error"};

/* The listeners /metrics reports, with their label: http, admin, and plain (the plain
 * HTTP listener beside an HTTPS one) when ingress.tls configures it. Returns how many. */
static int listeners_of(const struct ingress *ing, const struct ing_listener *out[3],
                        const char *names[3])
{
	int n = 0;
	out[n] = &ing->listeners[LISTENER_HTTP];
	names[n++] = "http";
	out[n] = &ing->listeners[LISTENER_ADMIN];
	names[n++] = "admin";
	if (ing->cfg->ingress.tls.enabled && ing->cfg->ingress.tls.plain_listen != NULL) {
		out[n] = &ing->plain;
		names[n++] = "plain";
	}
	return n;
}

static void metrics_connections(FILE *f, const struct ingress *ing)
{
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
	    {"connections", "gauge", "Client connections open now, by listener."},
	    {"connections_max", "gauge",
	     "Connections a listener holds at most (http: ingress.max_connections)."},
	    {"connections_accepted_total", "counter", "Client connections accepted."},
	    {"connections_timed_out_total", "counter",
	     "Connections closed for not delivering a request within "
	     "ingress.request_read_timeout."},
	    {"accept_errors_total", "counter",
	     "Transient accept errors skipped (ECONNABORTED, EPROTO, EPERM, EINTR)."},
	};
	const struct ing_listener *lst[3];
	const char *names[3];
	int nlst = listeners_of(ing, lst, names);
	for (size_t i = 0; i < PD_ARRAY_SIZE(fam); i++) {
		fprintf(f, "# HELP palladium_ingress_%s %s\n# TYPE palladium_ingress_%s %s\n",
		        fam[i].name, fam[i].help, fam[i].name, fam[i].type);
		for (int k = 0; k < nlst; k++) {
			const struct ing_listener *l = lst[k];
			const uint64_t v[] = {l->nconns, l->max_conns, l->accepted, l->timed_out,
			                      l->accept_errors};
			fprintf(f, "palladium_ingress_%s{listener=\"%s\"} %lu\n", fam[i].name,
			        names[k], (unsigned long)v[i]);
		}
	}
	fputs("# HELP palladium_ingress_accept_paused_total Times a listener stopped accepting: "
	      "at its connection limit (until one closes) or after an accept error such as "
	      "EMFILE (for a short rest).\n"
	      "# TYPE palladium_ingress_accept_paused_total counter\n",
	      f);
	for (int k = 0; k < nlst; k++)
		for (int r = 0; r < PAUSE_MAX; r++)
			fprintf(
			    f,
			    "palladium_ingress_accept_paused_total{listener=\"%s\",reason=\"%s\"} "
			    "%lu\n",
			    names[k], pause_names[r], (unsigned long)lst[k]->paused[r]);
}

static void counter(FILE *f, const char *name, const char *help, uint64_t v)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s counter\n%s %lu\n", name, help, name, name,
	        (unsigned long)v);
}

static void metrics_counters(FILE *f, const struct ingress *ing)
{
	const struct ing_stats *s = &ing->stats;
	counter(f, "palladium_ingress_copied_bytes_total",
	        "Payload bytes the ingress copied (request bodies into registered buffers).",
	        s->copied_bytes);
	counter(f, "palladium_ingress_response_copied_bytes_total",
	        "Response payload bytes the ingress copied (written from receive buffers: 0).",
	        s->response_copied_bytes);
	counter(f, "palladium_ingress_bad_messages_total", "Fabric messages dropped as malformed.",
	        s->bad_messages);
	counter(f, "palladium_ingress_late_responses_total",
	        "Responses for requests already timed out or whose client left.",
	        s->late_responses);
	counter(f, "palladium_ingress_skipped_headers_total",
	        "Hop-by-hop or framing response headers dropped.", s->skipped_headers);
	counter(f, "palladium_ingress_invalid_headers_total",
	        "Response headers dropped for an invalid name or value.", s->invalid_headers);
	counter(f, "palladium_ingress_send_failures_total", "Request sends the fabric failed.",
	        s->send_failures);
	counter(f, "palladium_ingress_lost_on_link_down_total",
	        "Requests failed with 502 because the engine holding them went away.",
	        s->lost_on_link_down);
	counter(f, "palladium_ingress_post_failures_total", "Receive posts the fabric refused.",
	        s->post_failures);
	counter(f, "palladium_ingress_held_rejections_total",
	        "429 answers held for ingress.reject_delay.", s->held_total);
	counter(f, "palladium_ingress_held_rejections_gone_total",
	        "Held 429 answers whose client went away during the hold (HTTP/2).", s->held_gone);

	static const struct {
		int idx;
		const char *status;
	} h2o_errors[] = {
	    {H2O_STATUS_ERROR_400, "400"}, {H2O_STATUS_ERROR_403, "403"},
	    {H2O_STATUS_ERROR_404, "404"}, {H2O_STATUS_ERROR_405, "405"},
	    {H2O_STATUS_ERROR_413, "413"}, {H2O_STATUS_ERROR_416, "416"},
	    {H2O_STATUS_ERROR_417, "417"}, {H2O_STATUS_ERROR_500, "500"},
	    {H2O_STATUS_ERROR_502, "502"}, {H2O_STATUS_ERROR_503, "503"},
	};
	fputs("# HELP palladium_ingress_h2o_errors_total Error responses h2o sent by itself "
	      "(malformed or oversized requests).\n"
	      "# TYPE palladium_ingress_h2o_errors_total counter\n",
	      f);
	for (size_t i = 0; i < PD_ARRAY_SIZE(h2o_errors); i++)
		fprintf(f, "palladium_ingress_h2o_errors_total{status=\"%s\"} %lu\n",
		        h2o_errors[i].status,
		        (unsigned long)ing->ctx.emitted_error_status[h2o_errors[i].idx]);

	if (ing->fab == NULL)
		return;
	struct pd_fabric_stats fs;
	pd_fabric_get_stats(ing->fab, &fs);
	const struct {
		const char *name;
		uint64_t v;
	} fabric[] = {
	    {"msgs_sent", fs.msgs_sent},
	    {"bytes_sent", fs.bytes_sent},
	    {"msgs_recv", fs.msgs_recv},
	    {"bytes_recv", fs.bytes_recv},
	    {"credit_msgs_sent", fs.credit_msgs_sent},
	    {"credit_msgs_recv", fs.credit_msgs_recv},
	    {"send_errors", fs.send_errors},
	    {"refused", fs.refused},
	    {"no_credit", fs.no_credit},
	    {"recv_errors", fs.recv_errors},
	    {"send_busy", fs.send_busy},
	};
	for (size_t i = 0; i < PD_ARRAY_SIZE(fabric); i++)
		fprintf(f,
		        "# TYPE palladium_ingress_fabric_%s_total counter\n"
		        "palladium_ingress_fabric_%s_total %lu\n",
		        fabric[i].name, fabric[i].name, (unsigned long)fabric[i].v);
}

static void serve_metrics(struct ingress *ing, h2o_req_t *req)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (f == NULL) {
		ing_send_text(req, 500, "out of memory\n", strlen("out of memory\n"));
		return;
	}
	metrics_routes(f, ing);
	metrics_tenants(f, ing);
	metrics_connections(f, ing);
	metrics_counters(f, ing);
	fclose(f);
	h2o_iovec_t body = h2o_strdup(&req->pool, text, len);
	free(text);
	req->res.status = 200;
	req->res.reason = "OK";
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
	               H2O_STRLIT("text/plain; version=0.0.4; charset=utf-8"));
	req->res.content_length = body.len;
	static h2o_generator_t generator = {NULL, NULL};
	h2o_start_response(req, &generator);
	if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
		h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
	else
		h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
}

/* 200 when every route has a connected engine for its hop 0; else 503 naming the others. */
static void serve_healthz(struct ingress *ing, h2o_req_t *req)
{
	h2o_iovec_t body = h2o_iovec_init(H2O_STRLIT("unreachable:"));
	bool ok = true;
	for (uint32_t r = 0; r < ing->nroutes; r++) {
		if (ing_route_reachable(&ing->routes[r]))
			continue;
		ok = false;
		body = h2o_concat(&req->pool, body, h2o_iovec_init(H2O_STRLIT(" ")),
		                  h2o_iovec_init(ing->routes[r].prefix, ing->routes[r].prefix_len));
	}
	if (ok) {
		ing_send_text(req, 200, "ok\n", 3);
		return;
	}
	body = h2o_concat(&req->pool, body, h2o_iovec_init(H2O_STRLIT("\n")));
	ing_send_text(req, 503, body.base, body.len);
}

int ing_on_admin_req(h2o_handler_t *self, h2o_req_t *req)
{
	struct ingress *ing = ((struct ing_handler *)self)->ing;
	bool get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
	           h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
	h2o_iovec_t p = req->path_normalized;
	if (h2o_memis(p.base, p.len, H2O_STRLIT("/healthz"))) {
		if (get)
			serve_healthz(ing, req);
		else
			ing_send_text(req, 405, "method not allowed\n", 19);
		return 0;
	}
	if (h2o_memis(p.base, p.len, H2O_STRLIT("/metrics"))) {
		if (get)
			serve_metrics(ing, req);
		else
			ing_send_text(req, 405, "method not allowed\n", 19);
		return 0;
	}
	ing_send_text(req, 404, "not found\n", 10);
	return 0;
}
