/*
 * What the fuzz targets share: a failed-property abort and a reader of the fuzz input.
 */
#ifndef TMO_FUZZ_COMMON_H
#define TMO_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/*
 * A property the target checks. On a violation it says which, with the details, and aborts:
 * libFuzzer reports the abort as a crash and keeps the input that caused it.
 */
#define FUZZ_CHECK(cond, ...)                                                              \
	do {                                                                                 \
		if (!(cond)) {                                                               \
			fprintf(stderr, "%s:%d: property failed: %s: ", __FILE__, __LINE__,  \
				#cond);                                                      \
			fprintf(stderr, __VA_ARGS__);                                        \
			fputc('\n', stderr);                                                 \
			abort();                                                             \
		}                                                                            \
	} while (0)

/* FUZZ_TRACE=1 in the environment makes TRACE() print each step: for reading a reproducer
 * (run the target on the input file alone). */
static inline bool fuzz_tracing(void)
{
	static int on = -1;
	if (on < 0)
		on = getenv("FUZZ_TRACE") != NULL;
	return on;
}
#define TRACE(...) (fuzz_tracing() ? fprintf(stderr, __VA_ARGS__) : 0)

/*
 * The fuzz input, read from both ends: control bytes (what to do next) from the front, payload
 * bytes (what to send) from the back, so that a mutation of one rarely shifts the other.
 * Reading past the end gives zeros and counts as exhausted.
 */
struct fuzz_input {
	const uint8_t *data;
	size_t front, back; /* [front, back) is still unread */
};

static inline void fuzz_input_init(struct fuzz_input *in, const uint8_t *data, size_t size)
{
	in->data = data;
	in->front = 0;
	in->back = size;
}

static inline int fuzz_input_done(const struct fuzz_input *in)
{
	return in->front >= in->back;
}

/* The next control byte (0 once exhausted). */
static inline uint8_t fuzz_byte(struct fuzz_input *in)
{
	return in->front < in->back ? in->data[in->front++] : 0;
}

/* A control value in [lo, hi]. */
static inline uint32_t fuzz_range(struct fuzz_input *in, uint32_t lo, uint32_t hi)
{
	uint32_t v = fuzz_byte(in);
	if (hi - lo > 255)
		v = v << 8 | fuzz_byte(in);
	return lo + v % (hi - lo + 1);
}

/* Up to `want` payload bytes from the back; returns where they start and sets *got. */
static inline const uint8_t *fuzz_payload(struct fuzz_input *in, size_t want, size_t *got)
{
	size_t left = in->back - in->front;
	size_t n = want < left ? want : left;
	in->back -= n;
	*got = n;
	return in->data + in->back;
}

#endif
