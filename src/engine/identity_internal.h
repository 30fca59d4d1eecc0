/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The user and group a tenant's function processes run as: tenants[].run_as, or a default
 * identity of the tenant's own. Resolved once when the engine starts (name lookups are
 * not safe in a forked child) and applied in each child between fork and exec.
 */
#ifndef PD_ENGINE_IDENTITY_INTERNAL_H
#define PD_ENGINE_IDENTITY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/config.h"

/*
 * A tenant without run_as runs as uid = gid = IDENTITY_DEFAULT_BASE + its index in
 * tenants[] (61000..61063): no passwd entry is needed, and two tenants never share it.
 */
#define IDENTITY_DEFAULT_BASE 61000u

struct identity {
	uid_t uid;
	gid_t gid;
	bool drop;        /* the engine is root: the child switches to uid/gid before exec */
	bool from_run_as; /* uid/gid come from tenants[].run_as (else: the default) */
};

/*
 * Resolve the identity of tenant `tenant` of cfg. With as_root (the engine runs as root):
 * run_as "user" is the user's uid and primary group, "user:group" that group; a name made
 * of digits only is taken as a numeric id; no run_as gives the default above. Without
 * as_root the identity is the engine's own (drop is false) and run_as is not looked at.
 *
 * Returns 0; -ENOENT if the user or group does not exist; -EPERM if it resolves to uid 0
 * or gid 0 (a root function would not be isolated from anything); -EINVAL for a run_as
 * that is not "user" or "user:group"; another negative errno if the lookup itself
 * failed. On error, a one-line reason (without the tenant's name) is written to err.
 * Not async-signal-safe (NSS lookups): call it at start-up, never in a forked child.
 */
int identity_resolve(const struct pd_config *cfg, uint32_t tenant, bool as_root,
                     struct identity *id, char *err, size_t errlen);

/*
 * The name of the passwd entry of uid, if there is one: 0 (name written), -ENOENT, or
 * another negative errno. For the start-up warning that a default identity belongs to
 * a real account. Not async-signal-safe.
 */
int identity_account_of(uid_t uid, char *name, size_t len);

/*
 * In a forked child, before exec: if id->drop, set the supplementary groups to the one
 * group, then the gid, then the uid (each checked, and checked again by reading the
 * credentials back, and a return to uid 0 must fail); in every case set
 * PR_SET_NO_NEW_PRIVS, so that exec of a set-user-ID file gains nothing.
 * Async-signal-safe. Returns 0, or a negative errno with *step naming the call that
 * failed. The kernel clears the parent-death signal when the credentials change: set it
 * after this call.
 */
int identity_apply(const struct identity *id, const char **step);

#endif
