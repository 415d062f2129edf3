/*
 * Private to tmo: a ring of provided buffers the loop owns (IORING_REGISTER_PBUF_RING, Linux
 * 5.19), the memory that multishot receives fill: the kernel picks a free buffer for each
 * chunk it receives, says which in the CQE (IORING_CQE_F_BUFFER, the id in the top 16 bits of
 * cqe->flags), and tmo gives it back once the chunk is consumed. When every buffer is taken, a
 * multishot receive ends with -ENOBUFS and what follows stays in the socket: memory stays
 * bounded by the ring, whatever the peers send.
 *
 * Debian's liburing 2.3 has the ring's helpers but not io_uring_setup_buf_ring(): the ring's
 * memory is mapped here and registered with io_uring_register_buf_ring().
 */
#ifndef TMO_SRC_BUF_RING_H
#define TMO_SRC_BUF_RING_H

#include <liburing.h>
#include <stddef.h>
#include <stdint.h>

struct tmo__buf_ring {
	struct io_uring *ring;     /* the io_uring it is registered with */
	struct io_uring_buf_ring *br;
	unsigned char *bufs;       /* entries * buf_size bytes, buffer `bid` at bid * buf_size */
	size_t ring_bytes, bufs_bytes;
	uint32_t entries;          /* a power of two */
	uint32_t buf_size;
	uint32_t in_kernel;        /* buffers the kernel may pick from now */
	uint16_t group;            /* the buffer group id requests name (sqe->buf_group) */
};

/*
 * Maps `entries` buffers of `buf_size` bytes and their ring, registers the ring with `ring` as
 * buffer group `group`, and gives the kernel every buffer. `entries` is a power of two from 1
 * to 32768, `buf_size` from 1 to 1 GiB. Returns 0, -EINVAL (bad sizes; also the kernel's
 * answer before 5.19, which has no buffer rings, and for a ring it cannot use), -EEXIST (the
 * group is taken on this ring), -ENOMEM, or another error of io_uring_register(2). On failure
 * nothing is left to free.
 */
int tmo__buf_ring_init(struct tmo__buf_ring *b, struct io_uring *ring, uint16_t group,
		       uint32_t entries, uint32_t buf_size);

/* Unregisters the ring and unmaps it and its buffers. The kernel must hold no request that
 * may still pick a buffer from it. */
void tmo__buf_ring_exit(struct tmo__buf_ring *b);

/* Takes the buffer a CQE names (IORING_CQE_F_BUFFER set in `cqe_flags`): it is the caller's
 * until tmo__buf_ring_recycle. NULL if the CQE names none or an id out of range. */
static inline unsigned char *tmo__buf_ring_take(struct tmo__buf_ring *b, uint32_t cqe_flags,
						uint16_t *bid)
{
	if (!(cqe_flags & IORING_CQE_F_BUFFER))
		return NULL;
	uint32_t id = cqe_flags >> IORING_CQE_BUFFER_SHIFT;
	if (id >= b->entries)
		return NULL;
	*bid = (uint16_t)id;
	b->in_kernel--;
	return b->bufs + (size_t)id * b->buf_size;
}

/* Gives buffer `bid` back to the kernel: its chunk has been consumed. */
void tmo__buf_ring_recycle(struct tmo__buf_ring *b, uint16_t bid);

#endif
