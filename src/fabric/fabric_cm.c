/* SPDX-License-Identifier: Apache-2.0 */
/* Connection management: connecting, and the EQ: requests, accepts, the challenge-response. */
#include "fabric/fabric_internal.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#define CM_DATA_MAX 256 /* FI_OPT_CM_DATA_SIZE of the tcp provider */

static inline uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/* DATA credits that `credits` reserved receives allow (see PD_FABRIC_CREDIT_RESERVE). */
static uint32_t grant_from(uint16_t credits)
{
	return min_u32((uint32_t)credits - PD_FABRIC_CREDIT_RESERVE, PD_FABRIC_IMM_CREDITS_MAX);
}

struct fi_info *pd_fabric_hints(const char *provider, const struct pd_fabric_ops *ops)
{
	struct fi_info *hints = fi_allocinfo();
	if (hints == NULL)
		return NULL;
	hints->ep_attr->type = FI_EP_MSG;
	hints->caps = ops->caps;
	hints->mode = FI_CONTEXT | FI_CONTEXT2 | ops->mode;
	hints->domain_attr->mr_mode =
	    FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY;
	hints->domain_attr->threading = FI_THREAD_DOMAIN;
	hints->ep_attr->rx_ctx_cnt = FI_SHARED_CONTEXT;
	hints->fabric_attr->prov_name = strdup(provider);
	if (hints->fabric_attr->prov_name == NULL) {
		fi_freeinfo(hints);
		return NULL;
	}
	return hints;
}

static int resolve_peer(struct pd_fabric *fab, const char *host, uint16_t port,
                        struct fi_info **info)
{
	struct fi_info *hints = pd_fabric_hints(fab->provider, fab->ops);
	if (hints == NULL)
		return -FI_ENOMEM;
	char service[8];
	snprintf(service, sizeof(service), "%u", port);
	/* Same fabric and domain as ours (the endpoint is opened on our domain). */
	hints->fabric_attr->name = strdup(fab->info->fabric_attr->name);
	hints->domain_attr->name = strdup(fab->info->domain_attr->name);
	int ret = -FI_ENOMEM;
	if (hints->fabric_attr->name != NULL && hints->domain_attr->name != NULL)
		ret = fi_getinfo(PD_FABRIC_FI_VERSION, host, service, FI_NUMERICHOST, hints, info);
	if (ret == -FI_ENODATA) {
		free(hints->fabric_attr->name);
		free(hints->domain_attr->name);
		hints->fabric_attr->name = NULL;
		hints->domain_attr->name = NULL;
		ret = fi_getinfo(PD_FABRIC_FI_VERSION, host, service, FI_NUMERICHOST, hints, info);
	}
	fi_freeinfo(hints);
	return ret;
}

/* ---- the server side: connection requests and the challenge --------------------------------- */

static void connreq_refuse(struct pd_fabric *fab, struct fi_info *info,
                           const struct pd_fabric_hello *h, int err, const char *reason)
{
	fab->stats.refused++;
	PD_FABRIC_WARN_RL(fab, err, "refused connection from peer %u (version %u, tenant %u): %s",
	                  h->peer_id, h->version, h->tenant, reason);
	int ret = fi_reject(fab->pep, info->handle, reason, strlen(reason) + 1);
	if (ret != 0)
		PD_FABRIC_WARN_RL(fab, pd_fabric_errno(ret), "fi_reject failed");
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The live challenge issued to (peer_id, tenant), or NULL; expired ones die here. */
static struct pd_fabric_challenge *challenge_find(struct pd_fabric *fab, uint16_t peer_id,
                                                  uint16_t tenant, int64_t now)
{
	for (size_t i = 0; i < PD_FABRIC_CHALLENGES; i++) {
		struct pd_fabric_challenge *c = &fab->challenges[i];
		if (c->live && c->expires_ms <= now)
			c->live = false;
		if (c->live && c->peer_id == peer_id && c->tenant == tenant)
			return c;
	}
	return NULL;
}

/*
 * A keyed hello asking for a challenge: refuse it with one (a fresh Ns and the HMAC that
 * proves this side holds the key). One challenge per (peer, tenant): a newer request
 * replaces it. Not counted as a refusal: it is the first half of every keyed link.
 */
static void challenge_issue(struct pd_fabric *fab, struct fi_info *info,
                            const struct pd_fabric_hello *h, const uint8_t *nc)
{
	int64_t now = mono_ms();
	struct pd_fabric_challenge *c = challenge_find(fab, h->peer_id, h->tenant, now);
	for (size_t i = 0; c == NULL && i < PD_FABRIC_CHALLENGES; i++)
		if (!fab->challenges[i].live)
			c = &fab->challenges[i];
	if (c == NULL) { /* all taken: the one closest to expiring goes */
		c = &fab->challenges[0];
		for (size_t i = 1; i < PD_FABRIC_CHALLENGES; i++)
			if (fab->challenges[i].expires_ms < c->expires_ms)
				c = &fab->challenges[i];
	}
	c->live = false;
	struct pd_fabric_wire_challenge w = {
	    .magic = htole32(PD_FABRIC_CHALLENGE_MAGIC),
	    .version = htole16(fab->version),
	};
	memcpy(c->nc, nc, PD_FABRIC_NONCE_LEN);
	if (RAND_bytes(c->ns, PD_FABRIC_NONCE_LEN) != 1 ||
	    pd_fabric_mac(fab, PD_FABRIC_MAC_SERVER_CHALLENGE, c->nc, c->ns, h,
	                  (uint16_t)fab->primitive, fab->local_id, w.mac) != 0) {
		connreq_refuse(fab, info, h, -EIO, "palladium: cannot make a challenge");
		return;
	}
	memcpy(w.nonce, c->ns, PD_FABRIC_NONCE_LEN);
	c->live = true;
	c->peer_id = h->peer_id;
	c->tenant = h->tenant;
	c->expires_ms = now + PD_FABRIC_CHALLENGE_MS;
	int ret = fi_reject(fab->pep, info->handle, &w, sizeof(w));
	if (ret != 0) {
		c->live = false;
		PD_FABRIC_WARN_RL(fab, pd_fabric_errno(ret), "fi_reject (challenge) failed");
	}
}

/*
 * A keyed hello answering a challenge: 0 if proof is the HMAC over the nonces of the
 * challenge issued to this peer and tenant (nc, ns filled), else -EACCES and reason.
 * The challenge is used up either way: a proof is accepted once.
 */
static int proof_check(struct pd_fabric *fab, const struct pd_fabric_hello *h, const uint8_t *proof,
                       uint8_t *nc, uint8_t *ns, char *reason, size_t reason_len)
{
	struct pd_fabric_challenge *c = challenge_find(fab, h->peer_id, h->tenant, mono_ms());
	if (c == NULL) {
		snprintf(
		    reason, reason_len,
		    "palladium: no challenge outstanding for this peer (replayed or late proof)");
		return -EACCES;
	}
	c->live = false;
	memcpy(nc, c->nc, PD_FABRIC_NONCE_LEN);
	memcpy(ns, c->ns, PD_FABRIC_NONCE_LEN);
	uint8_t want[PD_FABRIC_MAC_LEN];
	if (pd_fabric_mac(fab, PD_FABRIC_MAC_CLIENT_PROOF, nc, ns, h, (uint16_t)fab->primitive,
	                  fab->local_id, want) != 0) {
		snprintf(reason, reason_len, "palladium: cannot check the proof");
		return -EACCES;
	}
	if (!pd_fabric_mac_equal(want, proof)) {
		snprintf(reason, reason_len,
		         "palladium: wrong proof (another cluster key, or a replay)");
		return -EACCES;
	}
	return 0;
}

static void on_connreq(struct pd_fabric *fab, struct fi_info *info, const void *data, size_t len)
{
	struct pd_fabric_hello hello;
	char reason[128];
	uint8_t auth, proof[PD_FABRIC_MAC_LEN];
	uint8_t nc[PD_FABRIC_NONCE_LEN] = {0}, ns[PD_FABRIC_NONCE_LEN] = {0};
	int err = pd_fabric_hello_parse(fab, data, len, PD_FABRIC_HELLO_MAGIC, &hello, &auth, proof,
	                                reason, sizeof(reason));
	if (err != 0) {
		connreq_refuse(fab, info, &hello, err, reason);
		return;
	}
	if (auth == PD_FABRIC_AUTH_CHALLENGE) {
		challenge_issue(fab, info, &hello, proof);
		return;
	}
	if (auth == PD_FABRIC_AUTH_PROOF) {
		err = proof_check(fab, &hello, proof, nc, ns, reason, sizeof(reason));
		if (err != 0) {
			connreq_refuse(fab, info, &hello, err, reason);
			return;
		}
	}

	struct pd_fabric_rx *rx = NULL;
	uint16_t credits = 0;
	void *conn_ctx = NULL;
	err = fab->cb.on_connect_request(fab->app, &hello, &rx, &credits, &conn_ctx);
	if (err == 0 &&
	    (rx == NULL || rx->fab != fab || rx->closing || credits < PD_FABRIC_CREDITS_MIN))
		err = -EINVAL;
	if (err != 0) {
		snprintf(reason, sizeof(reason), "palladium: refused by peer: %s",
		         strerror(err < 0 ? -err : err));
		connreq_refuse(fab, info, &hello, err, reason);
		return;
	}

	struct pd_fabric_conn *old = pd_fabric_rx_peer(rx, hello.peer_id);
	if (old != NULL && old->outbound) {
		snprintf(reason, sizeof(reason), "palladium: already connected to this peer");
		connreq_refuse(fab, info, &hello, -EEXIST, reason);
		return;
	}
	if (old != NULL) {
		/* The peer restarted. Dispatch what the old endpoint already completed while
		 * its sender id still means the old conn, then close it. */
		pd_fabric_cq_poll(rx, INT_MAX, true);
		old = pd_fabric_rx_peer(rx, hello.peer_id);
		if (old != NULL)
			pd_fabric_conn_fail(old, -ECONNRESET);
	}

	struct pd_fabric_conn *conn = pd_fabric_conn_new(fab, rx, hello.peer_id, conn_ctx, false);
	if (conn == NULL) {
		snprintf(reason, sizeof(reason), "palladium: out of memory");
		connreq_refuse(fab, info, &hello, -ENOMEM, reason);
		return;
	}
	conn->peer_grant = grant_from(hello.credits);
	conn->grant = grant_from(credits);

	err = pd_fabric_conn_ep_open(conn, info);
	if (err != 0)
		goto refuse;
	struct pd_fabric_hello mine = {
	    .version = fab->version,
	    .peer_id = fab->local_id,
	    .tenant = rx->tenant,
	    .credits = credits,
	};
	uint8_t mac[PD_FABRIC_MAC_LEN];
	if (fab->keyed && pd_fabric_mac(fab, PD_FABRIC_MAC_SERVER_ACCEPT, nc, ns, &mine,
	                                (uint16_t)fab->primitive, hello.peer_id, mac) != 0) {
		err = -EIO;
		goto close_ep;
	}
	struct pd_fabric_wire_accept accept;
	pd_fabric_hello_encode(fab, &mine, PD_FABRIC_ACCEPT_MAGIC,
	                       fab->keyed ? PD_FABRIC_AUTH_PROOF : PD_FABRIC_AUTH_NONE,
	                       fab->keyed ? mac : NULL, sizeof(mac), &accept);
	err = fi_accept(conn->ep, &accept, sizeof(accept));
	if (err != 0) {
		err = -pd_fabric_errno(err);
		PD_FABRIC_WARN_RL(fab, err, "fi_accept for peer %u failed", hello.peer_id);
		goto close_ep;
	}
	return;

close_ep:
	fi_close(&conn->ep->fid);
	conn->ep = NULL;
refuse:
	pd_fabric_conn_free(conn);
	snprintf(reason, sizeof(reason), "palladium: cannot accept: %s", strerror(-err));
	connreq_refuse(fab, info, &hello, err, reason);
}

/* ---- the client side: connecting, answering the challenge ----------------------------------- */

/* The hello this side sends on conn (both requests of a keyed link say the same). */
static struct pd_fabric_hello conn_hello(const struct pd_fabric_conn *conn)
{
	return (struct pd_fabric_hello){
	    .version = conn->fab->version,
	    .peer_id = conn->fab->local_id,
	    .tenant = conn->tenant,
	    .credits = conn->hello_credits,
	};
}

int pd_fabric_connect(struct pd_fabric *fab, struct pd_fabric_rx *rx, const char *host,
                      uint16_t port, uint16_t peer_id, uint16_t credits, void *conn_ctx,
                      struct pd_fabric_conn **out)
{
	if (fab == NULL || rx == NULL || rx->fab != fab || rx->closing || host == NULL ||
	    out == NULL || credits < PD_FABRIC_CREDITS_MIN)
		return -EINVAL;
	if (pd_fabric_rx_peer(rx, peer_id) != NULL)
		return -EEXIST;
	if (strlen(host) >= sizeof(((struct pd_fabric_conn *)NULL)->host))
		return -EINVAL;

	struct fi_info *info = NULL;
	int ret = resolve_peer(fab, host, port, &info);
	if (ret != 0) {
		ret = pd_fabric_errno(ret);
		PD_FABRIC_WARN_RL(fab, ret, "fi_getinfo for %s:%u failed", host, port);
		return ret == ENODATA ? -EINVAL : -ret;
	}
	struct pd_fabric_conn *conn = pd_fabric_conn_new(fab, rx, peer_id, conn_ctx, true);
	if (conn == NULL) {
		ret = -ENOMEM;
		goto free_info;
	}
	conn->grant = grant_from(credits);
	conn->hello_credits = credits;
	conn->port = port;
	strcpy(conn->host, host);
	conn->auth = PD_FABRIC_AUTH_NONE;
	if (fab->keyed) { /* ask for a challenge first (docs/security.md) */
		conn->auth = PD_FABRIC_AUTH_CHALLENGE;
		if (RAND_bytes(conn->nc, PD_FABRIC_NONCE_LEN) != 1) {
			ret = -EIO;
			goto free_conn;
		}
	}
	ret = pd_fabric_conn_ep_open(conn, info);
	if (ret != 0)
		goto free_conn;

	struct pd_fabric_hello hello = conn_hello(conn);
	struct pd_fabric_wire_hello wire;
	pd_fabric_hello_encode(fab, &hello, PD_FABRIC_HELLO_MAGIC, conn->auth,
	                       fab->keyed ? conn->nc : NULL, PD_FABRIC_NONCE_LEN, &wire);
	ret = fi_connect(conn->ep, info->dest_addr, &wire, sizeof(wire));
	if (ret != 0) {
		/* The attempt itself failed (e.g. refused at once on loopback): report it
		 * like any other failed attempt, through on_down. */
		PD_FABRIC_INFO_RL(fab, "fi_connect to %s:%u (peer %u) failed: %s", host, port,
		                  peer_id, fi_strerror(-ret));
		pd_fabric_conn_fail(conn, -pd_fabric_errno(ret));
	}
	fi_freeinfo(info);
	*out = conn;
	return 0;

free_conn:
	pd_fabric_conn_free(conn);
free_info:
	fi_freeinfo(info);
	return ret;
}

/* This side refuses the peer it connected to: it did not prove the cluster key. */
static void server_refuse(struct pd_fabric_conn *conn, const char *why)
{
	struct pd_fabric *fab = conn->fab;
	fab->stats.refused++;
	PD_FABRIC_WARN_RL(fab, EACCES, "refused peer %u tenant %u: %s", conn->peer_id, conn->tenant,
	                  why);
	pd_fabric_conn_fail(conn, -EACCES);
}

/*
 * The server refused the first request with a challenge: check its HMAC (the server
 * holds the key), then connect again on a new endpoint (a refused one cannot) with the
 * proof.
 */
static void challenge_answer(struct pd_fabric_conn *conn, const struct pd_fabric_wire_challenge *ch)
{
	struct pd_fabric *fab = conn->fab;
	if (le16toh(ch->version) != fab->version) {
		PD_FABRIC_WARN_RL(fab, EPROTO, "peer %u tenant %u: challenge of version %u",
		                  conn->peer_id, conn->tenant, le16toh(ch->version));
		pd_fabric_conn_fail(conn, -EPROTO);
		return;
	}
	struct pd_fabric_hello hello = conn_hello(conn);
	uint8_t mac[PD_FABRIC_MAC_LEN];
	memcpy(conn->ns, ch->nonce, PD_FABRIC_NONCE_LEN);
	int err = pd_fabric_mac(fab, PD_FABRIC_MAC_SERVER_CHALLENGE, conn->nc, conn->ns, &hello,
	                        (uint16_t)fab->primitive, conn->peer_id, mac);
	if (err == 0 && !fab->no_server_check && !pd_fabric_mac_equal(mac, ch->mac)) {
		server_refuse(conn, "its challenge does not prove the cluster key");
		return;
	}
	if (err == 0)
		err = pd_fabric_mac(fab, PD_FABRIC_MAC_CLIENT_PROOF, conn->nc, conn->ns, &hello,
		                    (uint16_t)fab->primitive, conn->peer_id, mac);
	if (err != 0) {
		pd_fabric_conn_fail(conn, err);
		return;
	}
	fi_close(&conn->ep->fid);
	conn->ep = NULL;
	struct fi_info *info = NULL;
	int ret = resolve_peer(fab, conn->host, conn->port, &info);
	if (ret != 0) {
		pd_fabric_conn_fail(conn, -pd_fabric_errno(ret));
		return;
	}
	ret = pd_fabric_conn_ep_open(conn, info);
	if (ret == 0) {
		struct pd_fabric_wire_hello wire;
		pd_fabric_hello_encode(fab, &hello, PD_FABRIC_HELLO_MAGIC, PD_FABRIC_AUTH_PROOF,
		                       mac, sizeof(mac), &wire);
		conn->auth = PD_FABRIC_AUTH_PROOF;
		ret = fi_connect(conn->ep, info->dest_addr, &wire, sizeof(wire));
		if (ret != 0)
			ret = -pd_fabric_errno(ret);
	}
	fi_freeinfo(info);
	if (ret != 0)
		pd_fabric_conn_fail(conn, ret);
}

static void on_connected(struct pd_fabric *fab, struct pd_fabric_conn *conn, const void *data,
                         size_t len)
{
	if (conn->state == PD_FABRIC_CONN_CONNECTING) {
		struct pd_fabric_hello acc;
		char reason[128];
		uint8_t auth, proof[PD_FABRIC_MAC_LEN];
		int err = pd_fabric_hello_parse(fab, data, len, PD_FABRIC_ACCEPT_MAGIC, &acc, &auth,
		                                proof, reason, sizeof(reason));
		if (err == 0 && (acc.peer_id != conn->peer_id || acc.tenant != conn->tenant)) {
			snprintf(reason, sizeof(reason), "peer id %u tenant %u, expected %u/%u",
			         acc.peer_id, acc.tenant, conn->peer_id, conn->tenant);
			err = -EPROTO;
		}
		if (err == 0 && fab->keyed) {
			uint8_t want[PD_FABRIC_MAC_LEN];
			if (conn->auth != PD_FABRIC_AUTH_PROOF || auth != PD_FABRIC_AUTH_PROOF ||
			    pd_fabric_mac(fab, PD_FABRIC_MAC_SERVER_ACCEPT, conn->nc, conn->ns,
			                  &acc, (uint16_t)fab->primitive, fab->local_id,
			                  want) != 0 ||
			    !pd_fabric_mac_equal(want, proof)) {
				server_refuse(conn, "its accept does not prove the cluster key");
				return;
			}
		}
		if (err != 0) {
			PD_FABRIC_WARN_RL(fab, err, "bad accept from peer %u tenant %u: %s",
			                  conn->peer_id, conn->tenant, reason);
			pd_fabric_conn_fail(conn, err);
			return;
		}
		conn->peer_grant = grant_from(acc.credits);
		conn->state = PD_FABRIC_CONN_UP;
	} else if (conn->state == PD_FABRIC_CONN_ACCEPTING) {
		conn->state = PD_FABRIC_CONN_UP;
	} else {
		return;
	}
	if (!fab->ops->conn_up(conn))
		return;
	PD_FABRIC_INFO_RL(fab, "connection %s peer %u tenant %u up (credits %u/%u)",
	                  conn->outbound ? "to" : "from", conn->peer_id, conn->tenant,
	                  conn->peer_grant, conn->grant);
	fab->cb.on_up(fab->app, conn);
	pd_fabric_conn_ctrl_check(conn);
}

/* ---- the event queue ------------------------------------------------------------------------ */

static struct pd_fabric_conn *conn_of_fid(const struct pd_fabric *fab, fid_t fid)
{
	if (fid == NULL || (fab->pep != NULL && fid == &fab->pep->fid))
		return NULL;
	/* Events of a closed endpoint are purged by fi_close(); the handle is checked too. */
	return pd_fabric_conn_lookup(fab, (uint64_t)(uintptr_t)fid->context);
}

static void eq_read_error(struct pd_fabric *fab)
{
	char err_data[CM_DATA_MAX + 1];
	struct fi_eq_err_entry entry;
	memset(&entry, 0, sizeof(entry));
	entry.err_data = err_data;
	entry.err_data_size = CM_DATA_MAX;
	ssize_t ret = fi_eq_readerr(fab->eq, &entry, 0);
	if (ret < 0) {
		if (ret != -FI_EAGAIN)
			PD_FABRIC_WARN_RL(fab, pd_fabric_errno((int)ret), "fi_eq_readerr failed");
		return;
	}
	int err = pd_fabric_errno(entry.err);
	if (err == 0)
		err = EIO;
	struct pd_fabric_conn *conn = conn_of_fid(fab, entry.fid);
	if (conn == NULL) {
		PD_FABRIC_WARN_RL(fab, err, "event queue error on %s",
		                  entry.fid != NULL && fab->pep != NULL &&
		                          entry.fid == &fab->pep->fid
		                      ? "listener"
		                      : "closed endpoint");
		return;
	}
	size_t n = entry.err_data_size;
	if (entry.err_data != err_data) /* the provider kept its own copy */
		n = 0;
	if (n > CM_DATA_MAX)
		n = CM_DATA_MAX;
	if (err == ECONNREFUSED && conn->state == PD_FABRIC_CONN_CONNECTING &&
	    conn->auth == PD_FABRIC_AUTH_CHALLENGE &&
	    n == sizeof(struct pd_fabric_wire_challenge)) {
		struct pd_fabric_wire_challenge ch;
		memcpy(&ch, err_data, sizeof(ch));
		if (le32toh(ch.magic) == PD_FABRIC_CHALLENGE_MAGIC) {
			challenge_answer(conn, &ch);
			return;
		}
	}
	err_data[n] = '\0';
	if (n > 0)
		PD_FABRIC_WARN_RL(fab, err, "connection to peer %u tenant %u failed: %s",
		                  conn->peer_id, conn->tenant, err_data);
	pd_fabric_conn_fail(conn, -err);
}

int pd_fabric_eq_poll(struct pd_fabric *fab, int budget)
{
	_Alignas(struct fi_eq_cm_entry) uint8_t buf[sizeof(struct fi_eq_cm_entry) + CM_DATA_MAX];
	struct fi_eq_cm_entry *entry = (struct fi_eq_cm_entry *)buf;
	int n = 0;
	while (n < budget) {
		uint32_t event;
		ssize_t ret = fi_eq_read(fab->eq, &event, buf, sizeof(buf), 0);
		if (ret == -FI_EAGAIN)
			break;
		n++;
		if (ret == -FI_EAVAIL) {
			eq_read_error(fab);
			continue;
		}
		if (ret < 0) {
			PD_FABRIC_WARN_RL(fab, pd_fabric_errno((int)ret), "fi_eq_read failed");
			break;
		}
		size_t data_len = (size_t)ret > sizeof(*entry) ? (size_t)ret - sizeof(*entry) : 0;
		switch (event) {
		case FI_CONNREQ:
			on_connreq(fab, entry->info, entry->data, data_len);
			fi_freeinfo(entry->info);
			break;
		case FI_CONNECTED: {
			struct pd_fabric_conn *conn = conn_of_fid(fab, entry->fid);
			if (conn != NULL)
				on_connected(fab, conn, entry->data, data_len);
			break;
		}
		case FI_SHUTDOWN: {
			struct pd_fabric_conn *conn = conn_of_fid(fab, entry->fid);
			if (conn != NULL)
				pd_fabric_conn_fail(conn, -ECONNRESET);
			break;
		}
		default: PD_FABRIC_WARN_RL(fab, 0, "unexpected event %" PRIu32, event); break;
		}
	}
	return n;
}

struct pd_fabric_conn *pd_fabric_rx_sender(struct pd_fabric_rx *rx, uint16_t peer_id)
{
	struct pd_fabric_conn *conn = pd_fabric_rx_peer(rx, peer_id);
	if (conn != NULL && conn->state != PD_FABRIC_CONN_UP) {
		/* The peer is up before we read FI_CONNECTED: read it now, keep the order. */
		pd_fabric_eq_poll(rx->fab, PD_FABRIC_EQ_BUDGET);
		conn = pd_fabric_rx_peer(rx, peer_id);
	}
	return conn;
}
