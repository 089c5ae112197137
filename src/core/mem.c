#include "core/mem.h"

#include <malloc.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

/* Counted with malloc_usable_size so that free needs no header in front of each block:
 * the 16-byte prefix such a header costs would matter at 100k idle sessions.
 *
 * One counter per thread slot, each on its own cache line: a single shared counter was
 * written by every thread at every allocation and free, and its cache line went back and
 * forth between the cores on the message path. A block freed by another thread than the
 * one that allocated it is subtracted from the freeing thread's slot, so a slot may go
 * below zero; only the sum means anything. */
#define SLOTS 16

static struct {
    _Alignas(64) _Atomic int64_t n;
} used[SLOTS];
static _Atomic unsigned next_slot;
static _Thread_local int my_slot = -1;
static _Atomic bool counting;

static _Atomic int64_t *counter(void)
{
    if (my_slot < 0)
        my_slot = (int)(atomic_fetch_add_explicit(&next_slot, 1, memory_order_relaxed) % SLOTS);
    return &used[my_slot].n;
}

static void add(int64_t n)
{
    atomic_fetch_add_explicit(counter(), n, memory_order_relaxed);
}

static bool on(void)
{
    return atomic_load_explicit(&counting, memory_order_relaxed);
}

static void *count(void *p)
{
    if (p != NULL && on())
        add((int64_t)malloc_usable_size(p));
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
    size_t old = p && on() ? malloc_usable_size(p) : 0;
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        return NULL;
    if (old > 0)
        add(-(int64_t)old);
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
    if (on())
        add(-(int64_t)malloc_usable_size(p));
    free(p);
}

void mem_count(bool enable)
{
    atomic_store_explicit(&counting, enable, memory_order_relaxed);
}

size_t mem_used(void)
{
    int64_t sum = 0;
    for (int i = 0; i < SLOTS; i++)
        sum += atomic_load_explicit(&used[i].n, memory_order_relaxed);
    return sum > 0 ? (size_t)sum : 0;
}
