/*
 * tmo: deadlines on Linux I/O with io_uring. The umbrella header.
 *
 *   clock.h  monotonic nanoseconds, TMO_NEVER, relative-to-absolute helpers
 *   loop.h   the loop (one io_uring), its modes, running it, errors at init
 *   op.h     operations with deadlines: prepare, start, cancel, callbacks, ownership
 *   scope.h  deadlines over a block of work: nesting, shield, shift, expired
 *   group.h  many operations under one deadline: gather, wait, as_completed, quorum
 *   stream.h reading and writing a socket or pipe with gap, overall and rate limits
 *   tick.h   a callback every N nanoseconds (multishot kernel timeout)
 *   pool.h   blocking calls on worker threads or helper processes, with deadlines
 *
 * See docs/ for the design and the rules of ownership in one place.
 */
#ifndef TMO_TMO_H
#define TMO_TMO_H

#include "common.h"
#include "clock.h"
#include "loop.h"
#include "op.h"
#include "scope.h"
#include "group.h"
#include "stream.h"
#include "tick.h"
#include "pool.h"

#endif
