// SteerProgram loads the director's XDP steering program (steer.bpf.c),
// keeps its maps (VIPs, FULLNAT local addresses, NAT-mode real servers),
// attaches it to interfaces and reads its counters. The AF_XDP layer
// inserts its sockets into xsks_map_fd() (one per RX queue).
//
//   ASSIGN_OR_RETURN(std::unique_ptr<SteerProgram> steer,
//                    SteerProgram::Load());
//   RETURN_IF_ERROR(steer->AddVip(vip, 80, IPPROTO_TCP));
//   RETURN_IF_ERROR(steer->Attach("eth0", SteerMode::kXdpNative));
//   ... bpf_map_update_elem(steer->xsks_map_fd(), &queue, &xsk_fd, 0) ...
//   ASSIGN_OR_RETURN(SteerCounters counters, steer->ReadCounters());
//
// Ownership: a SteerProgram owns the loaded BPF object (program and maps)
// and every attachment it made. Its destructor detaches them all, from the
// network namespace the calling thread is in then, and unloads the object.
// It is not thread-safe; the kernel side needs no locking (maps are updated
// atomically per element, so a frame sees each entry either old or new).
//
// Every errno-returning libbpf call is wrapped here, once: callers see an
// absl::Status naming the interface (or entry) and the errno text, e.g.
//   attaching XDP steering to "eth0": Operation not permitted (need root?)
// Loading and attaching need root (CAP_BPF + CAP_NET_ADMIN).

#ifndef ANYLB_LBNODE_DATAPLANE_BPF_STEER_LOADER_H_
#define ANYLB_LBNODE_DATAPLANE_BPF_STEER_LOADER_H_

#include <array>
#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/ip_address.h"
#include "lbnode/dataplane/bpf/steer_structs.h"

struct bpf_object;

namespace anylb::dataplane::bpf {

// SteerMode is how the steering program is attached.
enum class SteerMode {
  kXdpNative,   // XDP in the driver: needed for AF_XDP at speed.
  kXdpGeneric,  // XDP on the skb: any driver, slower (AF_XDP copy mode).
};

// SteerVip is one entry of the VIP map: a destination the engine serves.
// Port 0 means every port of that address and protocol.
struct SteerVip {
  IpAddress address;
  uint16_t port = 0;
  uint8_t proto = 0;  // IPPROTO_TCP, IPPROTO_UDP, ...

  friend bool operator==(const SteerVip&, const SteerVip&) = default;
  friend std::strong_ordering operator<=>(const SteerVip&,
                                          const SteerVip&) = default;
};

// SteerNatBackend is one entry of the NAT-backend map: a real server of a
// NAT-mode service, by the source of its replies. Port 0 means every port.
struct SteerNatBackend {
  Endpoint backend;
  uint8_t proto = 0;  // IPPROTO_TCP or IPPROTO_UDP.

  friend bool operator==(const SteerNatBackend&,
                         const SteerNatBackend&) = default;
  friend std::strong_ordering operator<=>(const SteerNatBackend&,
                                          const SteerNatBackend&) = default;
};

// SteerCounters is one snapshot of the program's counters, summed over CPUs
// and indexed by anylb_steer_counter (steer_structs.h explains each).
struct SteerCounters {
  std::array<uint64_t, ANYLB_STEER_CNT_MAX> values = {};

  uint64_t operator[](anylb_steer_counter counter) const {
    return values[counter];
  }

  // Name returns a counter's name, like "steer_vip".
  static std::string_view Name(anylb_steer_counter counter);

  // ToString returns one "name value" line per counter.
  std::string ToString() const;
};

// SteerOptions are fixed at Load().
struct SteerOptions {
  // Entries of the fast-path flow map (LRU: the least recently used flow
  // is evicted when it is full), 1..2^24.
  uint32_t fastpath_flows = ANYLB_FASTPATH_DEFAULT_FLOWS;
};

// FastPathMaps are the fast path's map file descriptors (owned by the
// SteerProgram), for the AF_XDP workers that fill them
// (xsk/fastpath.h).
struct FastPathMaps {
  int flows = -1;        // LRU hash: anylb_fastpath_key → _value.
  int generations = -1;  // Array: RX queue → generation.
  int traffic = -1;      // Per-CPU array: slot → anylb_fastpath_traffic.
  uint32_t flow_capacity = 0;
};

// SteerProgram: see the file comment.
class SteerProgram {
 public:
  // Load opens the embedded object and loads the program into the kernel.
  // The maps start empty: nothing is steered until entries are added.
  static absl::StatusOr<std::unique_ptr<SteerProgram>> Load(
      const SteerOptions& options = {});

  SteerProgram(const SteerProgram&) = delete;
  SteerProgram& operator=(const SteerProgram&) = delete;

  // ~SteerProgram detaches from every interface (errors are printed to
  // stderr: a destructor cannot return them) and unloads the object.
  ~SteerProgram();

  // AddVip steers traffic to (`address`, `port`, `proto`); port 0 steers
  // every port. Adding an entry that is there already is OK. RemoveVip
  // withdraws one (NotFoundError if it was not there). ICMP and fragments
  // are steered to an address while any of its entries exists.
  absl::Status AddVip(const IpAddress& address, uint16_t port, uint8_t proto);
  absl::Status RemoveVip(const IpAddress& address, uint16_t port,
                         uint8_t proto);

  // ReplaceVips makes the VIP map hold exactly `vips` (a daemon snapshot):
  // new entries are added first, then stale ones removed, so an entry in
  // both the old and the new set is never missing. Returns the first error.
  absl::Status ReplaceVips(const std::set<SteerVip>& vips);

  // vips returns the VIP entries this object has installed.
  const std::set<SteerVip>& vips() const { return vips_; }

  // AddLocalAddress steers all traffic to `address`, a FULLNAT local
  // address (never the node's own BGP/SSH address: that traffic would be
  // taken from the kernel). RemoveLocalAddress withdraws it (NotFoundError
  // if it was not there).
  absl::Status AddLocalAddress(const IpAddress& address);
  absl::Status RemoveLocalAddress(const IpAddress& address);

  // AddNatBackend steers TCP/UDP (`proto`) from `backend`, a real server of
  // a NAT-mode service whose replies route through this node; port 0 means
  // every source port. RemoveNatBackend withdraws it (NotFoundError if it
  // was not there).
  absl::Status AddNatBackend(const Endpoint& backend, uint8_t proto);
  absl::Status RemoveNatBackend(const Endpoint& backend, uint8_t proto);

  // ReplaceLocalAddresses and ReplaceNatBackends are ReplaceVips for the
  // other two maps: add the new entries, then remove the stale ones.
  absl::Status ReplaceLocalAddresses(const std::set<IpAddress>& addresses);
  absl::Status ReplaceNatBackends(const std::set<SteerNatBackend>& backends);

  // The local addresses and NAT backends this object has installed.
  const std::set<IpAddress>& local_addresses() const { return locals_; }
  const std::set<SteerNatBackend>& nat_backends() const {
    return nat_backends_;
  }

  // Attach attaches the program to `interface` in the calling thread's
  // network namespace. A steering program a previous SteerProgram left
  // behind (a process killed before its destructor ran) is replaced;
  // anyone else's XDP program is left alone and the call fails with
  // FailedPreconditionError.
  absl::Status Attach(std::string_view interface, SteerMode mode);

  // Detach removes this object's program from `interface` (NotFoundError if
  // it is not attached there). DetachAll detaches from every interface and
  // returns the first error.
  absl::Status Detach(std::string_view interface);
  absl::Status DetachAll();

  // AddFastPathTxPort lets fast-path entries send to interface `ifindex`
  // (anylb_fastpath_value::tx_port = ifindex) with bpf_redirect_map; an
  // interface that cannot take redirected frames is refused by the kernel.
  absl::Status AddFastPathTxPort(int ifindex);

  // fastpath_maps: the fast path's maps (see FastPathMaps).
  const FastPathMaps& fastpath_maps() const { return fastpath_; }

  // ReadCounters returns the counters summed over all CPUs.
  absl::StatusOr<SteerCounters> ReadCounters() const;

  // program_fd is the program's file descriptor (BPF_PROG_TEST_RUN in
  // tests); xsks_map_fd the XSKMAP the AF_XDP layer fills, key = RX queue
  // index (< ANYLB_STEER_MAX_QUEUES), value = socket fd. Both owned here.
  int program_fd() const { return program_fd_; }
  int xsks_map_fd() const { return xsks_fd_; }

 private:
  struct Attachment {
    std::string interface;
    int ifindex = 0;
    SteerMode mode = SteerMode::kXdpNative;
  };

  struct Fds {
    int program;
    int vips;
    int vip_addrs;
    int locals;
    int nat_backends;
    int xsks;
    int counters;
    int tx_ports;
  };

  SteerProgram(bpf_object* object, const Fds& fds,
               const FastPathMaps& fastpath);

  absl::Status DetachOne(const Attachment& attachment);

  bpf_object* object_;
  int program_fd_;
  int vips_fd_;
  int vip_addrs_fd_;
  int locals_fd_;
  int nat_backends_fd_;
  int xsks_fd_;
  int counters_fd_;
  int tx_ports_fd_;
  FastPathMaps fastpath_;
  std::set<SteerVip> vips_;
  // How many entries of vips_ have each address: steer_vip_addrs holds the
  // addresses with a nonzero count.
  std::map<IpAddress, uint32_t> vip_address_counts_;
  std::set<IpAddress> locals_;
  std::set<SteerNatBackend> nat_backends_;
  std::vector<Attachment> attachments_;
};

}  // namespace anylb::dataplane::bpf

#endif  // ANYLB_LBNODE_DATAPLANE_BPF_STEER_LOADER_H_
