/**
 * mem: the one allocator seam.
 *
 * Two policies, chosen per call site:
 *  - mem_alloc / mem_calloc / mem_realloc / mem_strdup are for fixed-size internal
 *    objects. On out-of-memory they log and abort (the Redis and h2o policy), so callers
 *    never check for NULL.
 *  - mem_try_alloc / mem_try_realloc are for any size a peer influences. Callers cap the
 *    size first (len > FRAME_MAX → RC_ETOOBIG), then allocate, then check for NULL.
 *
 * Every allocation is counted in a process-wide _Atomic byte counter (mem_used()), which
 * the benchmarks read to report memory per connection.
 *
 * Threading: every function is thread-safe.
 */
#ifndef CIM_CORE_MEM_H
#define CIM_CORE_MEM_H

#include <stddef.h>

/** Allocate @p n bytes (uninitialised); aborts on OOM. Free with mem_free(). */
void *mem_alloc(size_t n) __attribute__((malloc, returns_nonnull));

/** Allocate @p n zeroed bytes; aborts on OOM. Free with mem_free(). */
void *mem_calloc(size_t n) __attribute__((malloc, returns_nonnull));

/** Resize @p p (NULL allocates) to @p n bytes; aborts on OOM. */
void *mem_realloc(void *p, size_t n) __attribute__((returns_nonnull));

/** Copy a NUL-terminated string; aborts on OOM. */
char *mem_strdup(const char *s) __attribute__((malloc, returns_nonnull));

/**
 * Allocate @p n bytes for a peer-influenced size.
 * @return the block, or NULL when the allocation failed (the caller answers with an rc).
 */
void *mem_try_alloc(size_t n) __attribute__((malloc, warn_unused_result));

/**
 * Resize @p p to @p n bytes for a peer-influenced size.
 * @return the new block, or NULL on failure, in which case @p p is still valid.
 */
void *mem_try_realloc(void *p, size_t n) __attribute__((warn_unused_result));

/** Free a block from any mem_ function. mem_free(NULL) is a no-op. */
void mem_free(void *p);

/** Bytes currently allocated through this module (approximate: excludes allocator overhead). */
size_t mem_used(void);

#endif
