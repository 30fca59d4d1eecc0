/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Which JSON library for the Online Boutique's services (issue 14: "measure before you
 * choose"): jansson against json-c, both from Debian, on the work the services do most —
 * parse a body (the catalog, a cart), read fields, build an answer and serialise it.
 * Each round: parse the catalog (apps/boutique/data/products.json), walk every product
 * reading id, name and price, build a cart object of 5 items and serialise it, and
 * serialise the catalog back. Both libraries in the same run, alternated; prints ns per
 * round for each and the ratio. Usage: bench/json/run (builds and runs this).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rounds.h"

static unsigned long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

volatile size_t sink;

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s products.json\n", argv[0]);
		return 2;
	}
	FILE *f = fopen(argv[1], "rb");
	if (f == NULL) {
		perror(argv[1]);
		return 1;
	}
	static char text[1 << 20];
	size_t len = fread(text, 1, sizeof(text), f);
	fclose(f);
	enum { ROUNDS = 2000, REPEATS = 5 };
	unsigned long long best_j = ~0ull, best_c = ~0ull;
	for (int r = 0; r < REPEATS; r++) {
		unsigned long long t0 = now_ns();
		for (int i = 0; i < ROUNDS; i++)
			round_jansson(text, len);
		unsigned long long t1 = now_ns();
		for (int i = 0; i < ROUNDS; i++)
			round_jsonc(text, len);
		unsigned long long t2 = now_ns();
		if (t1 - t0 < best_j)
			best_j = t1 - t0;
		if (t2 - t1 < best_c)
			best_c = t2 - t1;
	}
	printf("jansson %llu ns/round, json-c %llu ns/round (best of %d x %d rounds, %zu-byte "
	       "catalog)\njson: jansson/json-c=%.2f\n",
	       best_j / ROUNDS, best_c / ROUNDS, REPEATS, ROUNDS, len,
	       (double)best_j / (double)best_c);
	return 0;
}
