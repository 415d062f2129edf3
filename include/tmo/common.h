/*
 * tmo: deadlines on Linux I/O with io_uring.
 *
 * common.h: the export macro, the version, and conventions shared by every header.
 *
 * Return convention (as liburing): a function returns 0 or a non-negative count on success
 * and a negative errno value on failure, e.g. -EINVAL. strerror(-ret) reads it. Nothing in
 * tmo sets errno for the caller or aborts the process.
 */
#ifndef TMO_COMMON_H
#define TMO_COMMON_H

#define TMO_VERSION_MAJOR 0
#define TMO_VERSION_MINOR 1
#define TMO_VERSION_PATCH 0
#define TMO_VERSION_STRING "0.1.0"

#if defined(TMO_STATIC_DEFINE)
#define TMO_API
#elif defined(TMO_BUILDING)
#define TMO_API __attribute__((visibility("default")))
#else
#define TMO_API
#endif

#ifdef __cplusplus
#define TMO_BEGIN_DECLS extern "C" {
#define TMO_END_DECLS }
#else
#define TMO_BEGIN_DECLS
#define TMO_END_DECLS
#endif

#endif
