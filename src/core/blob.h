/**
 * blob: immutable, reference-counted bytes shared between threads.
 *
 * A message is encoded once by the store and the same bytes are pushed to every device
 * that must see it, on whatever worker: each holder takes a reference, seals from the
 * bytes on its own thread, and drops the reference. The count is _Atomic; the bytes are
 * never written after blob_new's caller filled them and handed the blob on.
 *
 * Threading: blob_ref / blob_unref from any thread; the creator fills data before
 * publishing the blob (a mailbox send is the publication).
 */
#ifndef CIM_CORE_BLOB_H
#define CIM_CORE_BLOB_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct blob {
    _Atomic uint32_t refs;
    uint32_t len;
    uint8_t data[];
} blob_t;

/** @return a blob of @p len bytes (uninitialised) with one reference. Aborts on OOM. */
blob_t *blob_new(size_t len);

/** Take another reference. @return @p b. */
blob_t *blob_ref(blob_t *b);

/** Drop a reference; the last one frees. blob_unref(NULL) is a no-op. */
void blob_unref(blob_t *b);

#endif
