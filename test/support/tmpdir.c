#include "support/tmpdir.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "support/test.h"

void tmpdir_make(char out[TMPDIR_MAX], const char *name)
{
    ASSERT_LT(snprintf(out, TMPDIR_MAX, "/tmp/cim-%s-XXXXXX", name), TMPDIR_MAX);
    ASSERT_NOT_NULL(mkdtemp(out));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

void tmpdir_remove(const char *dir)
{
    (void)nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
