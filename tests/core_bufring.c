/*
 * core-bufring: the ring of provided buffers (src/buf_ring.h) and the kernel behaviour that
 * multishot stream reads rest on: one multishot recv delivers every chunk, in order, each in a
 * buffer the CQE names; a chunk larger than a buffer spans several; when the ring runs dry the
 * recv ends with -ENOBUFS and the rest stays in the socket, nothing lost; recycled buffers are
 * used again. Runs on a bare io_uring, below the loop.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf_ring.h"
#include "helpers.h"

#define GROUP 7

struct fx {
	struct io_uring ring;
	int fds[2];
};

static int setup(void **state)
{
	static struct fx fx;

	memset(&fx, 0, sizeof(fx));
	assert_int_equal(io_uring_queue_init(64, &fx.ring, 0), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fx.fds), 0);
	*state = &fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	close(fx->fds[0]);
	close(fx->fds[1]);
	io_uring_queue_exit(&fx->ring);
	return 0;
}

static void start_multishot(struct fx *fx)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&fx->ring);

	assert_non_null(sqe);
	io_uring_prep_recv_multishot(sqe, fx->fds[0], NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = GROUP;
	io_uring_sqe_set_data64(sqe, 1);
	assert_int_equal(io_uring_submit(&fx->ring), 1);
}

/* Waits (at most 5 s) for the next CQE and copies it out. */
static struct io_uring_cqe next_cqe(struct fx *fx)
{
	struct io_uring_cqe *cqe = NULL;
	struct __kernel_timespec ts = { .tv_sec = 5 };

	assert_int_equal(io_uring_wait_cqe_timeout(&fx->ring, &cqe, &ts), 0);
	struct io_uring_cqe copy = *cqe;
	io_uring_cqe_seen(&fx->ring, cqe);
	return copy;
}

static void send_text(struct fx *fx, const char *text)
{
	assert_int_equal(write(fx->fds[1], text, strlen(text)), (ssize_t)strlen(text));
}

static void bad_sizes_are_einval_and_a_taken_group_eexist(void **state)
{
	struct fx *fx = *state;
	struct tmo__buf_ring b, c;

	assert_int_equal(tmo__buf_ring_init(&b, &fx->ring, GROUP, 0, 64), -EINVAL);
	assert_int_equal(tmo__buf_ring_init(&b, &fx->ring, GROUP, 3, 64), -EINVAL);
	assert_int_equal(tmo__buf_ring_init(&b, &fx->ring, GROUP, 65536, 64), -EINVAL);
	assert_int_equal(tmo__buf_ring_init(&b, &fx->ring, GROUP, 4, 0), -EINVAL);
	assert_int_equal(tmo__buf_ring_init(&b, &fx->ring, GROUP, 4, 64), 0);
	assert_int_equal(b.in_kernel, 4);
	assert_int_equal(tmo__buf_ring_init(&c, &fx->ring, GROUP, 4, 64), -EEXIST);
	tmo__buf_ring_exit(&b);
	/* unregistered: the group is free again */
	assert_int_equal(tmo__buf_ring_init(&c, &fx->ring, GROUP, 4, 64), 0);
	tmo__buf_ring_exit(&c);
}

static void one_multishot_recv_delivers_every_chunk_in_order(void **state)
{
	struct fx *fx = *state;
	struct tmo__buf_ring b;
	const char *chunks[] = { "one", "two!", "three", "four", "five", "six", "seven" };

	assert_int_equal(tmo__buf_ring_init(&b, &fx->ring, GROUP, 4, 64), 0);
	start_multishot(fx);
	/* more chunks than buffers: each is recycled once read, so the ring never runs dry */
	for (unsigned i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		send_text(fx, chunks[i]);
		struct io_uring_cqe cqe = next_cqe(fx);
		uint16_t bid = 0;
		assert_int_equal(cqe.res, (int)strlen(chunks[i]));
		assert_true(cqe.flags & IORING_CQE_F_MORE);
		unsigned char *buf = tmo__buf_ring_take(&b, cqe.flags, &bid);
		assert_non_null(buf);
		assert_memory_equal(buf, chunks[i], strlen(chunks[i]));
		tmo__buf_ring_recycle(&b, bid);
	}
	assert_int_equal(b.in_kernel, 4);
	shutdown(fx->fds[1], SHUT_WR); /* end of stream ends the multishot recv */
	struct io_uring_cqe end = next_cqe(fx);
	assert_int_equal(end.res, 0);
	assert_false(end.flags & IORING_CQE_F_MORE);
	tmo__buf_ring_exit(&b);
}

static void a_chunk_larger_than_a_buffer_spans_several_in_order(void **state)
{
	struct fx *fx = *state;
	struct tmo__buf_ring b;
	const char *text = "abcdefghijklmnopqrst"; /* 20 bytes into 8-byte buffers */
	char got[32] = { 0 };
	size_t len = 0;

	assert_int_equal(tmo__buf_ring_init(&b, &fx->ring, GROUP, 8, 8), 0);
	send_text(fx, text);
	start_multishot(fx);
	while (len < strlen(text)) {
		struct io_uring_cqe cqe = next_cqe(fx);
		uint16_t bid = 0;
		assert_true(cqe.res > 0 && cqe.res <= 8);
		unsigned char *buf = tmo__buf_ring_take(&b, cqe.flags, &bid);
		assert_non_null(buf);
		memcpy(got + len, buf, (size_t)cqe.res);
		len += (size_t)cqe.res;
		tmo__buf_ring_recycle(&b, bid);
	}
	assert_string_equal(got, text);
	shutdown(fx->fds[1], SHUT_WR);
	assert_int_equal(next_cqe(fx).res, 0);
	tmo__buf_ring_exit(&b);
}

static void a_dry_ring_ends_the_recv_and_loses_nothing(void **state)
{
	struct fx *fx = *state;
	struct tmo__buf_ring b;
	char rest[16] = { 0 };

	assert_int_equal(tmo__buf_ring_init(&b, &fx->ring, GROUP, 2, 8), 0);
	start_multishot(fx);
	send_text(fx, "first");
	struct io_uring_cqe a = next_cqe(fx);
	send_text(fx, "second");
	struct io_uring_cqe c = next_cqe(fx);
	assert_int_equal(a.res, 5);
	assert_int_equal(c.res, 6);
	assert_int_equal(b.in_kernel, 2); /* not counted until read: read them now */
	uint16_t bid_a = 0, bid_c = 0;
	assert_memory_equal(tmo__buf_ring_take(&b, a.flags, &bid_a), "first", 5);
	assert_memory_equal(tmo__buf_ring_take(&b, c.flags, &bid_c), "second", 6);
	assert_int_equal(b.in_kernel, 0);
	/* no buffer left: the next chunk ends the recv and stays in the socket */
	send_text(fx, "third");
	struct io_uring_cqe dry = next_cqe(fx);
	assert_int_equal(dry.res, -ENOBUFS);
	assert_false(dry.flags & IORING_CQE_F_MORE);
	assert_int_equal(read(fx->fds[0], rest, sizeof(rest)), 5);
	assert_string_equal(rest, "third");
	/* recycled buffers serve a new multishot recv */
	tmo__buf_ring_recycle(&b, bid_a);
	tmo__buf_ring_recycle(&b, bid_c);
	start_multishot(fx);
	send_text(fx, "fourth");
	struct io_uring_cqe d = next_cqe(fx);
	uint16_t bid_d = 0;
	assert_int_equal(d.res, 6);
	assert_memory_equal(tmo__buf_ring_take(&b, d.flags, &bid_d), "fourth", 6);
	shutdown(fx->fds[1], SHUT_WR);
	assert_int_equal(next_cqe(fx).res, 0);
	tmo__buf_ring_exit(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(bad_sizes_are_einval_and_a_taken_group_eexist,
						setup, teardown),
		cmocka_unit_test_setup_teardown(one_multishot_recv_delivers_every_chunk_in_order,
						setup, teardown),
		cmocka_unit_test_setup_teardown(a_chunk_larger_than_a_buffer_spans_several_in_order,
						setup, teardown),
		cmocka_unit_test_setup_teardown(a_dry_ring_ends_the_recv_and_loses_nothing, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
