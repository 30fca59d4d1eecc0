/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP front door: terminates HTTP on h2o and speaks only the fabric towards the nodes. */
#ifndef PD_INGRESS_INGRESS_H
#define PD_INGRESS_INGRESS_H

#include "common/config.h"

/*
 * Run the ingress of cfg in this thread until SIGINT or SIGTERM (the function blocks
 * those signals and takes them through a signalfd). Returns 0 after a clean stop, or a
 * negative errno if it could not start (the reason is logged).
 */
int pd_ingress_run(const struct pd_config *cfg);

#endif
