/*
 * The peers tmo is compared with, and tmo itself, behind one table of functions, so that
 * peer_bench.cc runs every workload of the comparison the same way on each. Each peer is one
 * file in this directory (tmo.c, libuv.c, libevent.c, epoll.c), written the way that library's
 * own users put a deadline on a read; Python's asyncio is bench/peers/asyncio_peer.py, which
 * runs the same workloads with the same parameters and writes the same JSON.
 *
 * Conventions, for every function below:
 * - 0 or a positive count on success, a negative errno on failure; on failure the peer says
 *   why in one line with peer_fail() (it ends up in the benchmark's error message).
 * - Time is CLOCK_MONOTONIC in nanoseconds (peer_now()), the clock every peer's timers use.
 * - A context made by a *_create function is used from the thread that made it only, and
 *   freed by the matching *_destroy, which also closes everything the peer opened.
 * - A peer that cannot run a workload leaves its function pointers NULL (the workload is then
 *   reported as "not applicable", e.g. libevent and epoll have no thread pool).
 */
#ifndef TMO_BENCH_PEER_H
#define TMO_BENCH_PEER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PEER_NSEC_PER_MSEC INT64_C(1000000)
#define PEER_NSEC_PER_SEC INT64_C(1000000000)

/* ---- Workload 1: a deadline on every read ----------------------------------------------- */

/*
 * `flows` AF_UNIX SOCK_STREAM socketpairs, both ends in the peer's loop, bouncing one byte:
 * at create one end of every flow sends a byte; each end, on receiving the byte, sends it
 * back. Every read (recv, or the readiness wait before it) is armed before its byte can
 * arrive and, when `deadline` is true, carries a deadline PEER_FLOW_DEADLINE_NS after the
 * moment it is armed (re-armed for every message, as a per-read timeout is), which never
 * fires: a deadline that fires fails the run with -ETIME. Sends carry no deadline.
 *
 * One item is one message received (one byte read, checked to be the byte sent). flows_run
 * runs the loop until at least `items` more messages have been received since the previous
 * call's target (overshoot is made up for by the next call, as in wl_pingpong_run); the flows
 * keep running from one call to the next (between calls they sit idle, bytes in flight).
 */
#define PEER_FLOW_DEADLINE_NS (10 * PEER_NSEC_PER_SEC)

/* ---- Workload 2: precision of deadlines that fire --------------------------------------- */

/*
 * n deadlines, armed one after another in the order given, each on its own pending read (or,
 * for a peer whose read deadlines are timers, its own timer: libuv, libevent, epoll, asyncio
 * arm a timer per read), all of which fire.
 *
 * The peer reads base = peer_now() + lead_ns once, before arming the first; deadline i is due
 * at base + offset[i]. The offsets are spread over one second and shuffled (the caller makes
 * them). When deadline i fires, the peer reads peer_now() in its callback (the moment the
 * user's code learns of it) and stores late[i] = that - due_i. armed_ns: peer_now() - base
 * right after the last is armed (negative when arming finished before base; the caller fails
 * the run if arming ran past the first due time). Returns when all n fired, or an error;
 * a deadline that fires twice or not at all fails with -EPROTO.
 */
struct peer_precision {
	uint32_t n;
	int64_t lead_ns;
	const int64_t *offset; /* [n] */
	int64_t *late;         /* [n], out */
	int64_t armed_ns;      /* out */
};

/* ---- Workload 3: cost of arming and cancelling with many pending ------------------------ */

/*
 * scale_create arms `pending` deadlines, each PEER_SCALE_TIMEOUT_NS after the moment it is
 * armed (none fires during a run), on whatever the peer's users attach a read deadline to (a
 * pending read for tmo, a timer for the others). scale_run then arms `batch` more the same way
 * and cancels those same `batch` (in the order armed), leaving `pending` pending again; it
 * stores the time spent arming and the time spent cancelling, in ns for the whole batch,
 * measured with peer_now() around each phase. A phase ends when the peer's work for it is
 * done as far as its user can tell: for tmo that includes the submission to the kernel and,
 * for a cancel, the op's callback having fired.
 */
#define PEER_SCALE_TIMEOUT_NS (3600 * PEER_NSEC_PER_SEC)

/* ---- Workload 4: idle connections with gap deadlines ------------------------------------ */

/*
 * `conns` connected AF_UNIX SOCK_STREAM sockets (fds[]: the peer's ends, handed over: the
 * peer owns them from the call on and closes every one before it returns, on every path, as
 * a server owns the sockets it accepted; a library that closes what it wraps, like libuv's
 * uv_close, does it for the peer; the harness fails a run that leaves one open). The other
 * ends are in a sender process: every PEER_IDLE_INTERVAL_NS it writes one byte to each
 * of the first `active` connections; the others stay silent throughout.
 *
 * The peer reads every connection (each read takes what is there, up to 64 bytes) and, when
 * `deadline` is true, keeps on each an idle (gap) deadline of gap_ns: reset whenever that
 * connection delivers data, as each peer's users keep an idle timeout. It must not fire
 * (count any that does in `timeouts`; the harness fails the run then).
 *
 * Once every connection is being read (and its deadline armed), the peer calls
 * p->start(p), which starts the clocks and the sender, then runs its loop. stop_fd becomes
 * readable when the run is over: the peer then calls p->stop(p) (which reads the clocks)
 * before it tears anything down, and returns. bytes: bytes received during the run.
 */
#define PEER_IDLE_INTERVAL_NS PEER_NSEC_PER_MSEC

struct peer_idle {
	const int *fds;
	uint32_t conns;
	uint32_t active;
	bool deadline;
	int64_t gap_ns;
	int stop_fd;
	void (*start)(struct peer_idle *p);
	void (*stop)(struct peer_idle *p);
	uint64_t bytes;    /* out */
	uint64_t timeouts; /* out */
	void *harness;     /* the harness's own state: not for the peer */
};

/* ---- Workload 5: offloading a blocking call --------------------------------------------- */

/*
 * A no-op job (a function that returns at once) run by the peer's thread pool, with the
 * pool's default size: offload_run runs `items` of them one after another, each timed from
 * just before it is submitted (peer_now() on the loop thread) to its completion callback on
 * the loop thread (peer_now() there): samples[i] gets that round trip in ns.
 */

/* ---- The table ---------------------------------------------------------------------------- */

struct peer {
	const char *name; /* as in benchmark names: "tmo", "libuv", ... */
	const char *how;  /* one line for the report: how a read deadline is kept */

	int (*flows_create)(void **ctx, uint32_t flows, bool deadline);
	int (*flows_run)(void *ctx, uint64_t items);
	void (*flows_destroy)(void *ctx);

	int (*precision)(struct peer_precision *p);

	int (*scale_create)(void **ctx, uint32_t pending);
	int (*scale_run)(void *ctx, uint32_t batch, int64_t *arm_ns, int64_t *cancel_ns);
	void (*scale_destroy)(void *ctx);

	int (*idle)(struct peer_idle *p);

	int (*offload_create)(void **ctx);
	int (*offload_run)(void *ctx, uint64_t items, int64_t *samples);
	void (*offload_destroy)(void *ctx);
};

/* tmo: the default loop (linked timeouts: the kernel keeps every deadline). */
extern const struct peer peer_tmo;
/* tmo with TMO_DEADLINES_LOOP (deadlines in the loop's heap, cancelled on expiry). */
extern const struct peer peer_tmo_loop;
/* tmo with TMO_MODE_LOW_LATENCY (DEFER_TASKRUN ring), linked timeouts. */
extern const struct peer peer_tmo_ll;
extern const struct peer peer_libuv;    /* built when pkg-config finds libuv */
extern const struct peer peer_libevent; /* built when pkg-config finds libevent */
extern const struct peer peer_epoll;

/* ---- Shared helpers (common.c) ------------------------------------------------------------ */

int64_t peer_now(void);

/* Records why the current workload failed (printf-style, one line; the first record since
 * peer_why_clear() wins) and returns `err` unchanged (a negative errno), so that
 * `return peer_fail(-EPROTO, "...");` reads naturally. */
int peer_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *peer_why(void);
void peer_why_clear(void);

/* Raises the soft RLIMIT_NOFILE to at least `fds` (up to the hard limit); 0 or -EMFILE. */
int peer_want_fds(uint32_t fds);

/* Makes `flows` socketpairs, nonblocking or not: fds[2*i], fds[2*i+1]. 0 or -errno (then
 * nothing is left open). */
int peer_socketpairs(int *fds, uint32_t flows, bool nonblocking);
void peer_close_all(int *fds, uint32_t count);

/* Memory, for workload 3: resident set of this process (VmRSS), and the kernel's slab in use
 * (sum of active objects x size from /proc/slabinfo when readable, else Slab: from
 * /proc/meminfo, system-wide). kernel_source says which. */
struct peer_mem {
	int64_t rss_bytes;
	int64_t kernel_bytes;
	const char *kernel_source;
};
int peer_mem_read(struct peer_mem *m);

#ifdef __cplusplus
}
#endif

#endif
