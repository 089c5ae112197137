/**
 * frame_type: the frame types of PROTOCOL.md §4, FT_*, the values of a frame header's type
 * field (core/frame reads and writes the headers).
 *
 * Apart from frame.h because it is part of libcim's installed API: cim.h's calls take and
 * report frame types (cimc_call's request and answer types, cimc_push_t.type), so `scons
 * install` puts this header beside cim.h (include/cim/core/frame_type.h). It includes
 * nothing and declares nothing but the constants.
 */
#ifndef CIM_CORE_FRAME_TYPE_H
#define CIM_CORE_FRAME_TYPE_H

enum {
    FT_HELLO = 0x0001,
    FT_HELLO_ACK = 0x0002,
    FT_BYE = 0x0003,
    FT_LOGIN = 0x0101,
    FT_LOGIN_ACK = 0x0102,
    FT_LOGOUT = 0x0103,
    FT_LOGOUT_ACK = 0x0104,
    FT_PING = 0x0105,
    FT_PONG = 0x0106,
    FT_SEND = 0x0201,
    FT_SEND_ACK = 0x0202,
    FT_PUSH = 0x0203,
    FT_PUSH_ACK = 0x0204,
    FT_SYNC = 0x0205,
    FT_SYNC_ACK = 0x0206,
    FT_RECALL = 0x0207,
    FT_RECALL_ACK = 0x0208,
    FT_CONV_LIST = 0x0301,
    FT_CONV_LIST_ACK = 0x0302,
    FT_HISTORY = 0x0303,
    FT_HISTORY_ACK = 0x0304,
    FT_READ = 0x0305,
    FT_READ_ACK = 0x0306,
    FT_EVENT = 0x0307,
    FT_GROUP_CREATE = 0x0401,
    FT_GROUP_CREATE_ACK = 0x0402,
    FT_GROUP_JOIN = 0x0403,
    FT_GROUP_JOIN_ACK = 0x0404,
    FT_GROUP_LEAVE = 0x0405,
    FT_GROUP_LEAVE_ACK = 0x0406,
    FT_GROUP_ADD = 0x0407,
    FT_GROUP_ADD_ACK = 0x0408,
    FT_GROUP_KICK = 0x0409,
    FT_GROUP_KICK_ACK = 0x040A,
    FT_GROUP_DISMISS = 0x040B,
    FT_GROUP_DISMISS_ACK = 0x040C,
    FT_GROUP_MEMBERS = 0x040D,
    FT_GROUP_MEMBERS_ACK = 0x040E,
    FT_GROUP_LIST = 0x040F,
    FT_GROUP_LIST_ACK = 0x0410,
    FT_CONTACT_ADD = 0x0501,
    FT_CONTACT_ADD_ACK = 0x0502,
    FT_CONTACT_REMOVE = 0x0503,
    FT_CONTACT_REMOVE_ACK = 0x0504,
    FT_CONTACT_LIST = 0x0505,
    FT_CONTACT_LIST_ACK = 0x0506,
    FT_BLOCK = 0x0507,
    FT_BLOCK_ACK = 0x0508,
    FT_UNBLOCK = 0x0509,
    FT_UNBLOCK_ACK = 0x050A,
};

#endif
