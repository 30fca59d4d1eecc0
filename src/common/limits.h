/* SPDX-License-Identifier: Apache-2.0 */
/* Hard limits of a cluster, shared by the config loader, shared memory and the engine. */
#ifndef PD_COMMON_LIMITS_H
#define PD_COMMON_LIMITS_H

#define PD_MAX_NODES 64
#define PD_MAX_TENANTS 64
#define PD_MAX_FUNCTIONS 256
#define PD_MAX_ROUTES 256
#define PD_MAX_CHAIN 32
#define PD_MAX_CALLS 64        /* functions[].calls: the functions one function may call */
#define PD_MAX_INSTANCES 64    /* instances of all functions of one tenant on one node */
#define PD_MAX_ARGS 63         /* functions[].args; the supervisor's argv adds the path and NULL */
#define PD_NAME_MAX 63         /* names: [a-z0-9_-], 1..63 characters */
#define PD_ACCOUNT_NAME_MAX 32 /* each half of tenants[].run_as, "user:group" */

#endif
