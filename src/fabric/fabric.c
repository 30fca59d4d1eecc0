/* SPDX-License-Identifier: Apache-2.0 */
/* Fabric layer over libfabric FI_EP_MSG: open/close, memory regions, sending, progress. */
#include "fabric/fabric_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMP PD_FABRIC_LOG_COMP
#define CQ_BUDGET 256 /* completions per rx per pd_fabric_progress() */
#define EQ_SIZE 256
#define NO_INDEX PD_FABRIC_NO_INDEX

static const char credit_marker[PD_FABRIC_CREDIT_MSG_LEN] = {'P', 'D', 'C', 'R',
                                                             'E', 'D', 'I', 'T'};

/* ---- open / close --------------------------------------------------------------------------- */

int pd_fabric_open(const struct pd_fabric_attr *attr, struct pd_fabric **out)
{
	if (attr == NULL || out == NULL || attr->provider == NULL || attr->cb.on_recv == NULL ||
	    attr->cb.on_recv_cancel == NULL || attr->cb.on_send_done == NULL ||
	    attr->cb.on_up == NULL || attr->cb.on_down == NULL ||
	    (attr->listen_host != NULL && attr->cb.on_connect_request == NULL) ||
	    (attr->primitive != PD_FABRIC_TWO_SIDED && attr->primitive != PD_FABRIC_ONE_SIDED))
		return -EINVAL;

	int ret = -ENOMEM;
	const char *what = "";
	struct pd_fabric *fab = calloc(1, sizeof(*fab));
	if (fab == NULL)
		return -ENOMEM;
	fab->cb = attr->cb;
	fab->app = attr->app;
	fab->local_id = attr->local_id;
	fab->version = attr->test.set_version ? attr->test.version : PD_FABRIC_PROTO_VERSION;
	fab->no_server_check = attr->test.no_server_check;
	fab->primitive = attr->primitive;
	if (attr->key != NULL) {
		fab->keyed = true;
		memcpy(fab->key, attr->key, PD_FABRIC_KEY_LEN);
	}
	fab->ops = attr->primitive == PD_FABRIC_ONE_SIDED ? &pd_fabric_one_sided_ops
	                                                  : &pd_fabric_two_sided_ops;
	fab->eq_fd = -1;
	fab->slot_free = NO_INDEX;
	fab->dead_tail = &fab->dead;
	fab->next_mr_key = 1;
	fab->provider = strdup(attr->provider);
	if (fab->provider == NULL)
		goto free_fab;

	struct fi_info *hints = pd_fabric_hints(attr->provider, fab->ops);
	if (hints == NULL)
		goto free_provider;
	char port[8];
	snprintf(port, sizeof(port), "%u", attr->listen_port);
	what = "fi_getinfo";
	if (attr->listen_host != NULL)
		ret = fi_getinfo(PD_FABRIC_FI_VERSION, attr->listen_host, port, FI_SOURCE, hints,
		                 &fab->info);
	else
		ret = fi_getinfo(PD_FABRIC_FI_VERSION, NULL, NULL, 0, hints, &fab->info);
	fi_freeinfo(hints);
	if (ret != 0)
		goto log_fail;
	if (fab->info->domain_attr->mr_mode & FI_MR_ENDPOINT) {
		what = "provider needs FI_MR_ENDPOINT";
		ret = -FI_ENOSYS;
		goto free_info;
	}
	fab->info->domain_attr->mr_mode |= (int)attr->test.mr_mode;
	if (attr->test.mr_mode != 0) /* keys the provider would not pick (it counts from 1) */
		fab->next_mr_key = 1000;
	int mr_mode = fab->info->domain_attr->mr_mode;
	if (fab->primitive == PD_FABRIC_ONE_SIDED && (mr_mode & FI_MR_RAW)) {
		what = "one-sided with FI_MR_RAW keys";
		ret = -FI_ENOSYS;
		goto free_info;
	}
	fab->mr_local = (mr_mode & FI_MR_LOCAL) != 0;
	/* Remote addresses: what the provider returned decides, not what we asked for. */
	fab->mr_virt = (mr_mode & FI_MR_VIRT_ADDR) || mr_mode == FI_MR_BASIC;
	/* verbs consumes a posted receive per write with immediate data; tcp does not. */
	fab->write_needs_recv = (fab->info->mode & FI_RX_CQ_DATA) ||
	                        strcmp(fab->info->fabric_attr->prov_name, "tcp") != 0;
	fab->max_msg_size = fab->info->ep_attr->max_msg_size;

	what = "fi_fabric";
	ret = fi_fabric(fab->info->fabric_attr, &fab->fabric, NULL);
	if (ret != 0)
		goto free_info;
	what = "fi_domain";
	ret = fi_domain(fab->fabric, fab->info, &fab->domain, NULL);
	if (ret != 0)
		goto close_fabric;
	struct fi_eq_attr eq_attr = {.size = EQ_SIZE, .wait_obj = FI_WAIT_FD};
	what = "fi_eq_open";
	ret = fi_eq_open(fab->fabric, &eq_attr, &fab->eq, NULL);
	if (ret != 0)
		goto close_domain;
	what = "fi_control(eq, FI_GETWAIT)";
	ret = fi_control(&fab->eq->fid, FI_GETWAIT, &fab->eq_fd);
	if (ret != 0)
		goto close_eq;

	memcpy(fab->credit_buf, credit_marker, sizeof(credit_marker));
	what = "fi_mr_reg(credit)";
	ret = fi_mr_reg(fab->domain, fab->credit_buf, sizeof(fab->credit_buf), FI_SEND, 0,
	                fab->next_mr_key++, 0, &fab->credit_mr, NULL);
	if (ret != 0)
		goto close_eq;
	fab->credit_desc = fab->mr_local ? fi_mr_desc(fab->credit_mr) : NULL;

	if (attr->listen_host != NULL) {
		what = "fi_passive_ep";
		ret = fi_passive_ep(fab->fabric, fab->info, &fab->pep, NULL);
		if (ret != 0)
			goto close_credit_mr;
		what = "fi_pep_bind";
		ret = fi_pep_bind(fab->pep, &fab->eq->fid, 0);
		if (ret != 0)
			goto close_pep;
		what = "fi_listen";
		ret = fi_listen(fab->pep);
		if (ret != 0)
			goto close_pep;
	}
	ret = pd_fabric_wait_fids_rebuild(fab);
	if (ret != 0)
		goto close_pep;
	if (attr->listen_host != NULL)
		PD_LOG_INFO(COMP, "listening on %s:%u (provider %s, domain %s, %s)",
		            attr->listen_host, attr->listen_port, fab->info->fabric_attr->prov_name,
		            fab->info->domain_attr->name, fab->ops->name);
	*out = fab;
	return 0;

close_pep:
	if (fab->pep != NULL)
		fi_close(&fab->pep->fid);
close_credit_mr:
	fi_close(&fab->credit_mr->fid);
close_eq:
	fi_close(&fab->eq->fid);
close_domain:
	fi_close(&fab->domain->fid);
close_fabric:
	fi_close(&fab->fabric->fid);
free_info:
	fi_freeinfo(fab->info);
log_fail:
	ret = pd_fabric_errno(ret);
	PD_LOG_WARN(COMP, ret, "%s failed (provider %s, listen %s:%u)", what, attr->provider,
	            attr->listen_host ? attr->listen_host : "-", attr->listen_port);
	ret = -ret;
free_provider:
	free(fab->provider);
free_fab:
	free(fab->wait_fids);
	free(fab);
	return ret;
}

void pd_fabric_close(struct pd_fabric *fab)
{
	if (fab == NULL)
		return;
	fab->closing = true;
	for (struct pd_fabric_conn *conn = fab->conns; conn != NULL; conn = conn->next)
		pd_fabric_conn_fail(conn, -ECANCELED);
	pd_fabric_reap(fab, NULL);
	while (fab->rxs != NULL)
		pd_fabric_rx_destroy(fab->rxs);
	while (fab->mrs != NULL)
		pd_fabric_mr_dereg(fab->mrs);
	if (fab->pep != NULL)
		fi_close(&fab->pep->fid);
	fi_close(&fab->credit_mr->fid);
	fi_close(&fab->eq->fid);
	int ret = fi_close(&fab->domain->fid);
	if (ret != 0)
		PD_LOG_WARN(COMP, pd_fabric_errno(ret), "fi_close(domain) failed");
	fi_close(&fab->fabric->fid);
	fi_freeinfo(fab->info);
	free(fab->wait_fids);
	free(fab->slots);
	free(fab->provider);
	free(fab);
}

/* ---- memory regions ------------------------------------------------------------------------- */

int pd_fabric_mr_reg(struct pd_fabric *fab, void *base, size_t len, struct pd_fabric_mr **out)
{
	if (fab == NULL || base == NULL || len == 0 || out == NULL)
		return -EINVAL;
	struct pd_fabric_mr *mr = calloc(1, sizeof(*mr));
	if (mr == NULL)
		return -ENOMEM;
	/* Requested keys are unique per domain: with mr_mode [] they are the keys peers
	 * write with (with FI_MR_PROV_KEY the provider picks its own). */
	int ret = fi_mr_reg(fab->domain, base, len, fab->ops->mr_access, 0, fab->next_mr_key++, 0,
	                    &mr->mr, NULL);
	if (ret != 0) {
		PD_LOG_WARN(COMP, pd_fabric_errno(ret), "fi_mr_reg of %zu bytes failed", len);
		free(mr);
		return -pd_fabric_errno(ret);
	}
	if (fab->primitive == PD_FABRIC_ONE_SIDED) {
		mr->key = fi_mr_key(mr->mr);
		if (mr->key == FI_KEY_NOTAVAIL) {
			PD_LOG_WARN(COMP, ENOSYS, "fi_mr_key of %zu bytes: no key", len);
			fi_close(&mr->mr->fid);
			free(mr);
			return -ENOSYS;
		}
	}
	mr->fab = fab;
	mr->base = base;
	mr->len = len;
	mr->desc = fab->mr_local ? fi_mr_desc(mr->mr) : NULL;
	mr->next = fab->mrs;
	if (fab->mrs != NULL)
		fab->mrs->prev = mr;
	fab->mrs = mr;
	*out = mr;
	return 0;
}

void pd_fabric_mr_dereg(struct pd_fabric_mr *mr)
{
	if (mr == NULL)
		return;
	struct pd_fabric *fab = mr->fab;
	int ret = fi_close(&mr->mr->fid);
	if (ret != 0)
		PD_LOG_WARN(COMP, pd_fabric_errno(ret), "fi_close(mr) failed");
	if (mr->prev != NULL)
		mr->prev->next = mr->next;
	else
		fab->mrs = mr->next;
	if (mr->next != NULL)
		mr->next->prev = mr->prev;
	free(mr);
}

/* ---- sending -------------------------------------------------------------------------------- */

int pd_fabric_send(struct pd_fabric_conn *conn, struct pd_fabric_mr *mr, const void *buf,
                   size_t len, void *send_ctx)
{
	if (conn == NULL || mr == NULL || mr->fab != conn->fab || (buf == NULL && len > 0))
		return -EINVAL;
	struct pd_fabric *fab = conn->fab;
	if (conn->state != PD_FABRIC_CONN_UP)
		return -ENOTCONN;
	if (len > 0 && !pd_fabric_in_mr(mr, buf, len))
		return -EINVAL;
	if (len > fab->max_msg_size)
		return -EMSGSIZE;
	if (conn->credits == 0) {
		fab->stats.no_credit++;
		return -EAGAIN;
	}
	struct pd_fabric_send_op *op = pd_fabric_send_op_get(conn->rx);
	if (op == NULL)
		return -ENOMEM;
	op->send_ctx = send_ctx;
	op->conn_handle = conn->handle;

	int ret = fab->ops->data_send(conn, op, buf, len, mr->desc);
	if (ret == -FI_EAGAIN && conn->credits > 0) {
		/* The provider is busy: let it progress (completions are kept for
		 * pd_fabric_progress(), no callback runs here), then try once more. */
		(void)pd_fabric_cq_stash(conn->rx, PD_FABRIC_CQ_BATCH);
		ret = fab->ops->data_send(conn, op, buf, len, mr->desc);
	}
	if (ret != 0) {
		pd_fabric_send_op_put(conn->rx, op);
		switch (ret) {
		case -FI_EAGAIN:
			if (conn->credits == 0)
				fab->stats.no_credit++;
			else
				fab->stats.send_busy++;
			return -EAGAIN;
		case -FI_EMSGSIZE: /* the caller's message, not a fabric error: not counted */
			return -EMSGSIZE;
		case -FI_EINVAL: return -EINVAL;
		default: fab->stats.send_errors++; return -pd_fabric_errno(ret);
		}
	}
	pd_fabric_conn_track(conn, op);
	fab->stats.msgs_sent++;
	fab->stats.bytes_sent += len;
	return 0;
}

/* ---- progress and waiting ------------------------------------------------------------------- */

int pd_fabric_progress(struct pd_fabric *fab)
{
	int n = pd_fabric_eq_poll(fab, PD_FABRIC_EQ_BUDGET);
	for (struct pd_fabric_rx *rx = fab->rxs; rx != NULL; rx = rx->next)
		n += pd_fabric_cq_poll(rx, CQ_BUDGET, false);
	if (fab->credit_retries > 0)
		for (struct pd_fabric_conn *conn = fab->conns; conn != NULL; conn = conn->next)
			if (conn->credit_retry)
				pd_fabric_conn_ctrl_check(conn);
	n += pd_fabric_reap(fab, NULL);
	return n;
}

int pd_fabric_wait_fds(struct pd_fabric *fab, int *fds, int max)
{
	if (fab == NULL || (fds == NULL && max > 0))
		return -EINVAL;
	if (max < 0 || (uint32_t)max < 1 + fab->n_rx)
		return -ENOSPC;
	int n = 0;
	fds[n++] = fab->eq_fd;
	for (struct pd_fabric_rx *rx = fab->rxs; rx != NULL; rx = rx->next)
		fds[n++] = rx->cq_fd;
	return n;
}

int pd_fabric_trywait(struct pd_fabric *fab)
{
	if (fab->dead != NULL || fab->credit_retries > 0)
		return -EAGAIN;
	for (struct pd_fabric_rx *rx = fab->rxs; rx != NULL; rx = rx->next)
		if (rx->stash_len > 0)
			return -EAGAIN;
	int ret = fi_trywait(fab->fabric, fab->wait_fids, (int)(1 + fab->n_rx));
	return ret == 0 ? 0 : -EAGAIN;
}

void pd_fabric_get_stats(const struct pd_fabric *fab, struct pd_fabric_stats *out)
{
	*out = fab->stats;
}
