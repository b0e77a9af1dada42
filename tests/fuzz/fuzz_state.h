/*
 * fuzz_state.h - the state-file fuzz target, shared by its libFuzzer driver (fuzz_state.c)
 * and the bounded mutation run of every test suite (fuzz_state_smoke.c).
 */
#ifndef FUNCMON_FUZZ_STATE_H
#define FUNCMON_FUZZ_STATE_H

#include <stddef.h>
#include <stdint.h>

/* MAX_FUNCTIONS of the fuzzed funcmond: small, so that inputs reach the overflow entries. */
#define FUZZ_STATE_MAX_FUNCTIONS 16u

/*
 * Feeds one state image to the loader and checks the outcome; exits through the test's
 * CHECK (or the sanitizer) on any violation. A rejected image must leave funcmond empty
 * and say why; an accepted one must stay within funcmond's bounds, and what funcmond
 * writes from it must load again to the same figures. Returns 1 when it was accepted.
 */
int fuzz_state_check(const uint8_t *data, size_t size);

/*
 * Builds seed state image `which` (0 .. FUZZ_STATE_SEEDS - 1) into a malloc'ed buffer
 * of *size bytes: images funcmond's own writer makes from a populated aggregate, and one
 * packed here with segments (the writer keeps those only while their files exist).
 */
#define FUZZ_STATE_SEEDS 4
uint8_t *fuzz_state_seed(int which, size_t *size);

#endif
