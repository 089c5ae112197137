/* Integration: `--version` on the programs this slice owns (cimd, cimctl, cimbench; cim and
 * cimdump have their own tests). Each prints exactly "<prog> <version>\n" on stdout, the
 * version the build recorded (core/version: git describe, or SConstruct's RELEASE), exits
 * 0 and does nothing else: no data directory is opened or created. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/version.h"
#include "support/server.h"
#include "support/test.h"

static void expect_version(const char *prog, const char *data)
{
    tsrv_tool_t tt;
    char want[256];

    tsrv_tool_start(&tt, NULL, 0, prog, "--data", data, "--version", (char *)NULL);
    ASSERT_EQ(tsrv_tool_finish(&tt, 10000), 0);
    snprintf(want, sizeof(want), "%s %s\n", prog, cim_version);
    if (strcmp(tt.out, want) != 0)
        TEST_FAIL_("%s --version printed '%s', want '%s'", prog, tt.out, want);
    ASSERT_EQ(tt.err_len, 0);
}

TEST(e2e_service_version_flag)
{
    char dir[] = "/tmp/cimtest-XXXXXX", data[64];
    struct stat sb;

    /* Not empty, and not a placeholder: the build always records something. */
    ASSERT_TRUE(strlen(cim_version) > 0);
    ASSERT_NOT_NULL(mkdtemp(dir));
    snprintf(data, sizeof(data), "%s/data", dir);
    expect_version("cimd", data);
    expect_version("cimctl", data);
    expect_version("cimbench", data);
    ASSERT_EQ(stat(data, &sb), -1); /* --version touched no data directory */
    ASSERT_OK(rmdir(dir));
}
