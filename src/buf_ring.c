/* A ring of provided buffers for multishot receives (buf_ring.h). */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "buf_ring.h"

#define MAX_ENTRIES 32768u            /* the kernel's limit for a buffer ring */
#define MAX_BUF_SIZE (1u << 30)

static size_t page_round(size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	return (n + page - 1) / page * page;
}

static void *map_anonymous(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void unmap_all(struct tmo__buf_ring *b)
{
	if (b->br)
		munmap(b->br, b->ring_bytes);
	if (b->bufs)
		munmap(b->bufs, b->bufs_bytes);
	b->br = NULL;
	b->bufs = NULL;
}

int tmo__buf_ring_init(struct tmo__buf_ring *b, struct io_uring *ring, uint16_t group,
		       uint32_t entries, uint32_t buf_size)
{
	if (!b || !ring || !entries || entries > MAX_ENTRIES || (entries & (entries - 1)) ||
	    !buf_size || buf_size > MAX_BUF_SIZE)
		return -EINVAL;
	*b = (struct tmo__buf_ring){
		.ring = ring,
		.entries = entries,
		.buf_size = buf_size,
		.group = group,
		/* The ring is page-aligned memory the kernel reads buffers' addresses from. */
		.ring_bytes = page_round(entries * sizeof(struct io_uring_buf)),
		.bufs_bytes = page_round((size_t)entries * buf_size),
	};
	b->br = map_anonymous(b->ring_bytes);
	b->bufs = map_anonymous(b->bufs_bytes);
	if (!b->br || !b->bufs) {
		unmap_all(b);
		return -ENOMEM;
	}

	struct io_uring_buf_reg reg = {
		.ring_addr = (uint64_t)(uintptr_t)b->br,
		.ring_entries = entries,
		.bgid = group,
	};
	int ret = io_uring_register_buf_ring(ring, &reg, 0);
	if (ret < 0) {
		unmap_all(b);
		return ret; /* the kernel's own answer: see buf_ring.h */
	}
	io_uring_buf_ring_init(b->br);
	int mask = io_uring_buf_ring_mask(entries);
	for (uint32_t i = 0; i < entries; i++)
		io_uring_buf_ring_add(b->br, b->bufs + (size_t)i * buf_size, buf_size, (uint16_t)i,
				      mask, (int)i);
	io_uring_buf_ring_advance(b->br, (int)entries);
	b->in_kernel = entries;
	return 0;
}

void tmo__buf_ring_exit(struct tmo__buf_ring *b)
{
	if (!b || !b->br)
		return;
	(void)io_uring_unregister_buf_ring(b->ring, b->group);
	unmap_all(b);
}

void tmo__buf_ring_recycle(struct tmo__buf_ring *b, uint16_t bid)
{
	io_uring_buf_ring_add(b->br, b->bufs + (size_t)bid * b->buf_size, b->buf_size, bid,
			      io_uring_buf_ring_mask(b->entries), 0);
	io_uring_buf_ring_advance(b->br, 1);
	b->in_kernel++;
}
