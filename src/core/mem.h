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
 * Once mem_count(true) was called, allocations are counted (mem_used(), in counters per
 * thread that it sums), for tests that check that code gives back what it took. Off by
 * default: the count costs a malloc_usable_size and a counter update per allocation and
 * free, on every thread of the message path, and nothing in cimd reads it.
 *
 * Threading: every function is thread-safe.
 */
#ifndef CIM_CORE_MEM_H
#define CIM_CORE_MEM_H

#include <stdbool.h>
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

/** Start (or stop) counting. A block allocated while not counting and freed while counting
 * is subtracted all the same: start before what is measured allocates anything. */
void mem_count(bool enable);

/** Bytes allocated through this module while counting and not freed (approximate:
 * excludes allocator overhead). */
size_t mem_used(void);

#endif
