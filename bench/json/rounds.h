/* SPDX-License-Identifier: Apache-2.0 */
/* One round of each library (bench/json/compare.c says what a round is); two files,
 * because the two libraries' headers cannot be included together. */
#ifndef PD_BENCH_JSON_ROUNDS_H
#define PD_BENCH_JSON_ROUNDS_H
#include <stddef.h>
extern volatile size_t sink;
void round_jansson(const char *text, size_t len);
void round_jsonc(const char *text, size_t len);
#endif
