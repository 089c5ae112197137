/**
 * Test support: a temporary directory for a test's store, and its removal.
 */
#ifndef CIM_TEST_TMPDIR_H
#define CIM_TEST_TMPDIR_H

#define TMPDIR_MAX 64

/* Make /tmp/cim-@p name-XXXXXX into @p out; aborts the test when it cannot. */
void tmpdir_make(char out[TMPDIR_MAX], const char *name);

/* Remove @p dir and everything in it (best effort: a temp dir). */
void tmpdir_remove(const char *dir);

#endif
