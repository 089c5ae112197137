#include "support/tcpinfo.h"

#include <linux/tcp.h>
#include <stddef.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "support/test.h"

uint32_t ttcp_data_segs_in(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);

    memset(&ti, 0, sizeof(ti));
    ASSERT_OK(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len));
    ASSERT_TRUE(len >= offsetof(struct tcp_info, tcpi_data_segs_in) + sizeof(ti.tcpi_data_segs_in));
    return ti.tcpi_data_segs_in;
}
