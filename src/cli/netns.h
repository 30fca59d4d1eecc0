/* SPDX-License-Identifier: Apache-2.0 */
/* Network namespaces for `palladium up --netns`: one per node and one for the ingress. */
#ifndef PD_CLI_NETNS_H
#define PD_CLI_NETNS_H

#include <stdio.h>
#include <sys/types.h>

#include "common/config.h"

#define NETNS_MAX_COMP (PD_MAX_NODES + 1)

struct netns_plan {
	char prefix[32]; /* "pd<pid>-" */
	char sw[48];     /* the namespace holding the bridge */
	int ncomp;
	struct {
		char ns[96];       /* namespace name */
		char addr[64];     /* its fabric address */
		char extra[2][64]; /* more local addresses (ingress listeners) */
	} comp[NETNS_MAX_COMP];    /* [0] ingress, [1 + i] node i */
};

/* Plan the namespaces of cfg for an `up` with this pid; errors go to errs. 0 or -EINVAL. */
int netns_plan(const struct pd_config *cfg, pid_t owner, struct netns_plan *plan, FILE *errs);
/*
 * Start a janitor process that deletes every namespace of the plan once the returned
 * fd is closed: by `up` at its end, or by the kernel when `up` dies. -errno on failure.
 */
int netns_janitor(const struct netns_plan *plan, pid_t *janitor);
/* Create the namespaces, the bridge and the veth pairs with their addresses and routes. */
int netns_create(const struct netns_plan *plan, FILE *errs);
/* In a child before exec: move into namespace ns. 0 or -errno. */
int netns_enter(const char *ns);

#endif
