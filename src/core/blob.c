#include "core/blob.h"

#include "core/mem.h"

blob_t *blob_new(size_t len)
{
    blob_t *b = mem_alloc(sizeof(*b) + len);
    atomic_init(&b->refs, 1);
    b->len = (uint32_t)len;
    return b;
}

blob_t *blob_ref(blob_t *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void blob_unref(blob_t *b)
{
    /* Release on the decrement, acquire before the free: the last holder must see every
     * other holder's reads finished. */
    if (b != NULL && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        mem_free(b);
}
