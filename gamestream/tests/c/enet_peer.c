/*
 * A tiny C ENet peer (Debian libenet-dev, ENet 1.3.x) used by tests/enet_interop.rs to prove that
 * rusty_enet speaks the same wire protocol. It knows nothing about GameStream: payloads are passed
 * in and printed out as hex; the Rust test encodes and decodes them.
 *
 *   enet_peer client <port> <connect_data> <channel> <hex>
 *       connect to 127.0.0.1:<port> with 48 channels and <connect_data>, send <hex> reliably on
 *       <channel>, wait for one packet, then disconnect gracefully.
 *   enet_peer server <packets_before_reply> <reply_hex>
 *       bind 127.0.0.1 on an ephemeral port, accept one peer, print what arrives, reply reliably on
 *       channel 0 after <packets_before_reply> packets, run until the peer disconnects.
 *
 * Output lines: PORT n | CONNECTED data channels | RECV channel hex | DISCONNECTED | ERROR text.
 * Every wait is bounded (10 s overall); the exit code is 0 only on a complete exchange.
 */
#include <enet/enet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OVERALL_MS 10000

static size_t from_hex(const char *hex, unsigned char *out, size_t cap) {
    size_t n = strlen(hex) / 2;
    if (n > cap) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned int b;
        if (sscanf(hex + 2 * i, "%2x", &b) != 1) return 0;
        out[i] = (unsigned char)b;
    }
    return n;
}

static void print_packet(const ENetEvent *ev) {
    printf("RECV %u ", (unsigned)ev->channelID);
    for (size_t i = 0; i < ev->packet->dataLength; i++) printf("%02x", ev->packet->data[i]);
    printf("\n");
    fflush(stdout);
}

static int send_hex(ENetPeer *peer, unsigned channel, const char *hex) {
    unsigned char buf[4096];
    size_t n = from_hex(hex, buf, sizeof buf);
    ENetPacket *p = enet_packet_create(buf, n, ENET_PACKET_FLAG_RELIABLE);
    return p != NULL && enet_peer_send(peer, (enet_uint8)channel, p) == 0;
}

static int run_client(int port, unsigned data, unsigned channel, const char *hex) {
    ENetHost *host = enet_host_create(NULL, 1, 0, 0, 0);
    if (host == NULL) { printf("ERROR host\n"); return 1; }
    ENetAddress addr;
    enet_address_set_host_ip(&addr, "127.0.0.1");
    addr.port = (enet_uint16)port;
    ENetPeer *peer = enet_host_connect(host, &addr, 48, data);
    if (peer == NULL) { printf("ERROR connect\n"); return 1; }

    int state = 0; /* 0 connecting, 1 waiting for reply, 2 disconnecting */
    ENetEvent ev;
    for (int waited = 0; waited < OVERALL_MS; waited += 10) {
        while (enet_host_service(host, &ev, 10) > 0) {
            if (ev.type == ENET_EVENT_TYPE_CONNECT) {
                printf("CONNECTED %u %u\n", ev.data, (unsigned)ev.peer->channelCount);
                fflush(stdout);
                if (!send_hex(peer, channel, hex)) { printf("ERROR send\n"); return 1; }
                state = 1;
            } else if (ev.type == ENET_EVENT_TYPE_RECEIVE) {
                print_packet(&ev);
                enet_packet_destroy(ev.packet);
                if (state == 1) {
                    enet_peer_disconnect(peer, 0);
                    state = 2;
                }
            } else if (ev.type == ENET_EVENT_TYPE_DISCONNECT) {
                printf("DISCONNECTED\n");
                fflush(stdout);
                enet_host_destroy(host);
                return state == 2 ? 0 : 1;
            }
        }
    }
    printf("ERROR timeout in state %d\n", state);
    return 1;
}

static int run_server(int before_reply, const char *reply_hex) {
    ENetAddress addr;
    enet_address_set_host_ip(&addr, "127.0.0.1");
    addr.port = 0;
    ENetHost *host = enet_host_create(&addr, 4, 0, 0, 0);
    if (host == NULL) { printf("ERROR host\n"); return 1; }
    ENetAddress bound;
    if (enet_socket_get_address(host->socket, &bound) != 0) { printf("ERROR address\n"); return 1; }
    printf("PORT %u\n", (unsigned)bound.port);
    fflush(stdout);

    int received = 0, replied = 0;
    ENetEvent ev;
    for (int waited = 0; waited < OVERALL_MS; waited += 10) {
        while (enet_host_service(host, &ev, 10) > 0) {
            if (ev.type == ENET_EVENT_TYPE_CONNECT) {
                printf("CONNECTED %u %u\n", ev.data, (unsigned)ev.peer->channelCount);
                fflush(stdout);
            } else if (ev.type == ENET_EVENT_TYPE_RECEIVE) {
                print_packet(&ev);
                enet_packet_destroy(ev.packet);
                if (++received == before_reply && !replied) {
                    if (!send_hex(ev.peer, 0, reply_hex)) { printf("ERROR send\n"); return 1; }
                    replied = 1;
                }
            } else if (ev.type == ENET_EVENT_TYPE_DISCONNECT) {
                printf("DISCONNECTED\n");
                fflush(stdout);
                enet_host_destroy(host);
                return replied ? 0 : 1;
            }
        }
    }
    printf("ERROR timeout after %d packets\n", received);
    return 1;
}

int main(int argc, char **argv) {
    if (enet_initialize() != 0) { printf("ERROR init\n"); return 1; }
    atexit(enet_deinitialize);
    if (argc == 6 && strcmp(argv[1], "client") == 0)
        return run_client(atoi(argv[2]), (unsigned)strtoul(argv[3], NULL, 0), (unsigned)atoi(argv[4]), argv[5]);
    if (argc == 4 && strcmp(argv[1], "server") == 0)
        return run_server(atoi(argv[2]), argv[3]);
    fprintf(stderr, "usage: enet_peer client <port> <data> <channel> <hex> | server <n> <reply_hex>\n");
    return 2;
}
