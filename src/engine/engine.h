/* SPDX-License-Identifier: Apache-2.0 */
/* The node's network engine: fabric endpoints, tenant pools, descriptor routing, supervisor. */
#ifndef PD_ENGINE_ENGINE_H
#define PD_ENGINE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"

/*
 * Run the engine of node node_idx in this thread until SIGINT or SIGTERM; stops the
 * node's functions before returning. Returns 0 after a clean stop, or a negative errno
 * if it could not start (the reason is logged).
 */
int pd_engine_run(const struct pd_config *cfg, uint32_t node_idx);

/*
 * The Unix socket path where the engine of node_idx answers `palladium stats`: in
 * /run/palladium for root, else in $TMPDIR (or /tmp)/palladium-<uid>. A path, not an
 * abstract name, so that it is reachable across network namespaces (`up --netns`).
 * Returns 0, or -ENAMETOOLONG.
 */
int pd_engine_stats_socket_path(const struct pd_config *cfg, uint32_t node_idx, char *buf,
                                size_t len);

#endif
