// DecapProgram loads the real-server decapsulation BPF programs
// (decap.bpf.c: IPIP, IP6IP6 and GUE, in an XDP and a tc flavour), fills
// their maps, attaches them to interfaces and reads their counters.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<DecapProgram> decap,
//   DecapProgram::Load());
//   RETURN_IF_ERROR(decap->AddLocalAddress(server_address));
//   RETURN_IF_ERROR(decap->AddGuePort(ANYLB_DECAP_DEFAULT_GUE_PORT));
//   RETURN_IF_ERROR(decap->Attach("eth0", DecapMode::kTc));
//   ...
//   ASSIGN_OR_RETURN(DecapCounters counters, decap->ReadCounters());
//
// Ownership: a DecapProgram owns the loaded BPF object (programs and maps)
// and every attachment it made. Its destructor detaches them all, from the
// network namespace the calling thread is in then (netlink is per
// namespace), and unloads the object. It is not thread-safe; the kernel
// side needs no locking (maps are updated atomically per element).
//
// Every errno-returning libbpf call is wrapped here, once: callers see an
// absl::Status naming the interface and the errno text, e.g.
//   attaching XDP decap to "eth0": Operation not permitted (need root?)
// Loading and attaching need root (CAP_BPF + CAP_NET_ADMIN).

#ifndef ANYLB_LBNODE_DATAPLANE_BPF_DECAP_LOADER_H_
#define ANYLB_LBNODE_DATAPLANE_BPF_DECAP_LOADER_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/ip_address.h"
#include "lbnode/dataplane/bpf/decap_structs.h"

struct bpf_object;

namespace anylb::dataplane::bpf {

// DecapMode is where the decapsulation runs.
enum class DecapMode {
  kXdpNative,   // XDP in the driver ("xdp"): fastest; needs driver support.
  kXdpGeneric,  // XDP on the skb ("xdp-generic"): any driver, slower.
  kTc,          // tc clsact ingress ("tc"): any driver.
};

// ParseDecapMode parses "xdp", "xdp-generic" or "tc"; anything else is an
// InvalidArgumentError quoting `text`.
absl::StatusOr<DecapMode> ParseDecapMode(std::string_view text);

// DecapModeName returns the text ParseDecapMode accepts for `mode`.
std::string_view DecapModeName(DecapMode mode);

// DecapCounters is one snapshot of the program's counters, summed over CPUs
// and indexed by anylb_decap_counter (decap_structs.h explains each).
struct DecapCounters {
  std::array<uint64_t, ANYLB_DECAP_CNT_MAX> values = {};

  uint64_t operator[](anylb_decap_counter counter) const {
    return values[counter];
  }

  // Name returns a counter's name, like "decap_ipip".
  static std::string_view Name(anylb_decap_counter counter);

  // ToString returns one "name value" line per counter.
  std::string ToString() const;
};

// DecapProgram: see the file comment.
class DecapProgram {
 public:
  // Load opens the embedded object and loads both programs into the kernel.
  // The maps start empty: nothing is decapsulated until AddLocalAddress()
  // (and, for GUE, AddGuePort()).
  static absl::StatusOr<std::unique_ptr<DecapProgram>> Load();

  DecapProgram(const DecapProgram&) = delete;
  DecapProgram& operator=(const DecapProgram&) = delete;

  // ~DecapProgram detaches from every interface (errors are printed to
  // stderr: a destructor cannot return them) and unloads the object.
  ~DecapProgram();

  // AddLocalAddress allows `address`, one of this server's own addresses,
  // as the outer destination of tunnelled packets. RemoveLocalAddress
  // withdraws it (NotFoundError if it was not there).
  absl::Status AddLocalAddress(const IpAddress& address);
  absl::Status RemoveLocalAddress(const IpAddress& address);

  // AddGuePort decapsulates GUE sent to UDP destination port `port`;
  // RemoveGuePort stops (NotFoundError if it was not there).
  absl::Status AddGuePort(uint16_t port);
  absl::Status RemoveGuePort(uint16_t port);

  // Attach attaches the program for `mode` to `interface` in the calling
  // thread's network namespace.
  //
  // An XDP or tc program that a previous DecapProgram left behind (a process
  // killed before its destructor ran) is replaced; anyone else's program in
  // the same place is left alone and the call fails with
  // FailedPreconditionError. For tc, a clsact qdisc is created if there is
  // none, and removed again on Detach.
  absl::Status Attach(std::string_view interface, DecapMode mode);

  // Detach removes this object's program from `interface` (NotFoundError if
  // it is not attached there). DetachAll detaches from every interface and
  // returns the first error.
  absl::Status Detach(std::string_view interface);
  absl::Status DetachAll();

  // ReadCounters returns the counters summed over all CPUs.
  absl::StatusOr<DecapCounters> ReadCounters() const;

  // The programs' file descriptors, owned by this object: for
  // BPF_PROG_TEST_RUN in tests.
  int xdp_program_fd() const { return xdp_fd_; }
  int tc_program_fd() const { return tc_fd_; }

 private:
  // Attachment is one program attached to one interface.
  struct Attachment {
    std::string interface;
    int ifindex = 0;
    DecapMode mode = DecapMode::kTc;
    bool created_clsact = false;  // tc: we made the clsact qdisc.
  };

  DecapProgram(bpf_object* object, int xdp_fd, int tc_fd, int dsts_fd,
               int gue_ports_fd, int counters_fd);

  absl::Status AttachXdp(Attachment& attachment);
  absl::Status AttachTc(Attachment& attachment);
  absl::Status DetachOne(const Attachment& attachment);

  bpf_object* object_;
  int xdp_fd_;
  int tc_fd_;
  int dsts_fd_;
  int gue_ports_fd_;
  int counters_fd_;
  std::vector<Attachment> attachments_;
};

}  // namespace anylb::dataplane::bpf

#endif  // ANYLB_LBNODE_DATAPLANE_BPF_DECAP_LOADER_H_
