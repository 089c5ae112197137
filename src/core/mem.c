#include "core/mem.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

/* Counted with malloc_usable_size so that free needs no header in front of each block:
 * the 16-byte prefix such a header costs would matter at 100k idle sessions. */
static _Atomic size_t used;

static void *count(void *p)
{
    if (p != NULL)
        atomic_fetch_add_explicit(&used, malloc_usable_size(p), memory_order_relaxed);
    return p;
}

static void oom(size_t n)
{
    LOG_ERROR("out of memory allocating %zu bytes", n);
    abort();
}

void *mem_alloc(size_t n)
{
    void *p = count(malloc(n ? n : 1));
    if (p == NULL)
        oom(n);
    return p;
}

void *mem_calloc(size_t n)
{
    void *p = count(calloc(1, n ? n : 1));
    if (p == NULL)
        oom(n);
    return p;
}

void *mem_try_alloc(size_t n)
{
    return count(malloc(n ? n : 1));
}

void *mem_try_realloc(void *p, size_t n)
{
    size_t old = p ? malloc_usable_size(p) : 0;
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        return NULL;
    atomic_fetch_sub_explicit(&used, old, memory_order_relaxed);
    return count(q);
}

void *mem_realloc(void *p, size_t n)
{
    void *q = mem_try_realloc(p, n);
    if (q == NULL)
        oom(n);
    return q;
}

char *mem_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = mem_alloc(n);
    memcpy(d, s, n);
    return d;
}

void mem_free(void *p)
{
    if (p == NULL)
        return;
    atomic_fetch_sub_explicit(&used, malloc_usable_size(p), memory_order_relaxed);
    free(p);
}

size_t mem_used(void)
{
    return atomic_load_explicit(&used, memory_order_relaxed);
}
