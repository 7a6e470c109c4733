#include "routing/announce/frr_config.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace anylb::routing::announce {
namespace {

struct WellKnown {
  const char* name;
  uint32_t value;
};
// FRR's names for well-known communities (lib community_str).
constexpr WellKnown kWellKnown[] = {
    {"graceful-shutdown", 0xFFFF0000}, {"no-export", 0xFFFFFF01},
    {"no-advertise", 0xFFFFFF02},      {"local-AS", 0xFFFFFF03},
    {"no-peer", 0xFFFFFF04},           {"blackhole", 0xFFFF029A},
};

std::string CommunityText(uint32_t value) {
  return absl::StrCat(value >> 16, ":", value & 0xFFFF);
}

std::string Trim(std::string_view text) {
  return std::string(
      absl::StripAsciiWhitespace(absl::string_view(text.data(), text.size())));
}

// LineKey: lines with the same key replace each other in FRR (a second
// `set extcommunity bandwidth` replaces the first), so a changed line needs
// no `no` first.
std::string LineKey(const std::string& line) {
  static constexpr const char* kKeys[] = {
      "match interface ",
      "match ip address prefix-list ",
      "match ipv6 address prefix-list ",
      "set community ",
      "set extcommunity bandwidth ",
      "set metric ",
  };
  for (const char* key : kKeys) {
    if (absl::StartsWith(line, key)) return key;
  }
  return line;
}

bool IsMatchLine(const std::string& line) {
  return absl::StartsWith(line, "match ");
}

// MapOfEntry: "route-map ANYLB-BGP permit 100" → "ANYLB-BGP".
std::string MapOfEntry(const std::string& entry) {
  std::vector<std::string> words = absl::StrSplit(entry, ' ');
  return words.size() >= 2 ? words[1] : "";
}

int SeqOfEntry(const std::string& entry) {
  std::vector<std::string> words = absl::StrSplit(entry, ' ');
  int seq = 0;
  if (words.size() == 4) (void)absl::SimpleAtoi(words[3], &seq);
  return seq;
}

std::string EntryName(const std::string& map, int seq) {
  return absl::StrCat("route-map ", map, " permit ", seq);
}

std::string PrefixListLine(const IpAddress& vip) {
  return absl::StrCat(vip.is_v4() ? "ip" : "ipv6", " prefix-list ",
                      PrefixListName(vip), " seq 5 permit ", vip.ToString(),
                      "/", vip.bit_length());
}

std::string MatchPrefixListLine(const IpAddress& vip) {
  return absl::StrCat("match ", vip.is_v4() ? "ip" : "ipv6",
                      " address prefix-list ", PrefixListName(vip));
}

}  // namespace

absl::StatusOr<std::vector<RoutingProtocol>> ParseProtocols(
    std::string_view text) {
  std::vector<RoutingProtocol> out;
  for (absl::string_view word :
       absl::StrSplit(absl::string_view(text.data(), text.size()), ',',
                      absl::SkipWhitespace())) {
    std::string w = absl::AsciiStrToLower(absl::StripAsciiWhitespace(word));
    RoutingProtocol p;
    if (w == "bgp") {
      p = RoutingProtocol::kBgp;
    } else if (w == "ospf") {
      p = RoutingProtocol::kOspf;
    } else if (w == "ospf6") {
      p = RoutingProtocol::kOspf6;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("routing protocol \"", w,
                       "\" unknown: use bgp, ospf, ospf6 (comma-separated)"));
    }
    if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  }
  return out;
}

std::string DaemonOf(RoutingProtocol protocol) {
  switch (protocol) {
    case RoutingProtocol::kBgp:
      return "bgpd";
    case RoutingProtocol::kOspf:
      return "ospfd";
    case RoutingProtocol::kOspf6:
      return "ospf6d";
  }
  return "";
}

std::set<std::string> MapsOf(RoutingProtocol protocol) {
  if (protocol == RoutingProtocol::kBgp) return {kBgpRouteMap};
  return {kOspfRouteMap};
}

uint32_t BandwidthForWeight(uint32_t weight) {
  if (weight == 0) return 1;
  return std::min(weight, kMaxBandwidthMbps);
}

absl::StatusOr<uint32_t> ParseCommunity(std::string_view text) {
  for (const WellKnown& w : kWellKnown) {
    if (text == w.name) return w.value;
  }
  std::vector<absl::string_view> parts =
      absl::StrSplit(absl::string_view(text.data(), text.size()), ':');
  uint32_t high = 0;
  uint32_t low = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &high) ||
      !absl::SimpleAtoi(parts[1], &low) || high > 0xFFFF || low > 0xFFFF) {
    return absl::InvalidArgumentError(absl::StrCat(
        "BGP community \"", std::string(text),
        "\" is not AA:NN (each 0..65535) or a well-known name "
        "(graceful-shutdown, no-export, no-advertise, local-AS, no-peer, "
        "blackhole)"));
  }
  return (high << 16) | low;
}

std::string PrefixListName(const IpAddress& vip) {
  if (vip.is_v4()) return absl::StrCat("ANYLB-V4-", vip.ToString());
  return absl::StrCat("ANYLB-V6-",
                      absl::StrReplaceAll(vip.ToString(), {{":", "-"}}));
}

std::string CanonicalLine(std::string_view line) {
  std::string trimmed = Trim(line);
  if (!absl::StartsWith(trimmed, "set community ")) return trimmed;
  std::vector<uint32_t> values;
  for (absl::string_view word :
       absl::StrSplit(absl::string_view(trimmed).substr(14), ' ',
                      absl::SkipWhitespace())) {
    absl::StatusOr<uint32_t> v =
        ParseCommunity(std::string_view(word.data(), word.size()));
    if (!v.ok()) return trimmed;  // "additive", "none": not ours; keep.
    values.push_back(*v);
  }
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  std::vector<std::string> words;
  words.reserve(values.size());
  for (uint32_t v : values) words.push_back(CommunityText(v));
  return absl::StrCat("set community ", absl::StrJoin(words, " "));
}

OwnedConfig ParseOwnedConfig(std::string_view running_config) {
  OwnedConfig out;
  std::string* entry = nullptr;
  std::string current;
  for (absl::string_view raw : absl::StrSplit(
           absl::string_view(running_config.data(), running_config.size()),
           '\n')) {
    std::string line = Trim(std::string_view(raw.data(), raw.size()));
    if (!current.empty()) {
      if (line == "exit" || line == "!" || line == "end" ||
          absl::StartsWith(line, "route-map ")) {
        current.clear();
        entry = nullptr;
      } else {
        if (!line.empty()) {
          out.route_map_entries[current].insert(CanonicalLine(line));
        }
        continue;
      }
    }
    (void)entry;
    if (absl::StartsWith(line, "ip prefix-list ANYLB-") ||
        absl::StartsWith(line, "ipv6 prefix-list ANYLB-")) {
      out.prefix_list_lines.insert(line);
    } else if (absl::StartsWith(line, "route-map ANYLB-")) {
      current = line;
      out.route_map_entries[current];  // An entry may have no lines.
    }
  }
  return out;
}

absl::StatusOr<OwnedConfig> DesiredConfig(const FrrIntent& intent,
                                          RoutingProtocol protocol,
                                          const OwnedConfig& running) {
  OwnedConfig out;
  const std::string match_device =
      absl::StrCat("match interface ", intent.device);
  if (protocol != RoutingProtocol::kBgp) {
    std::set<std::string>& lines =
        out.route_map_entries[EntryName(kOspfRouteMap, kCatchAllSeq)];
    lines.insert(match_device);
    if (intent.drained) {
      lines.insert(absl::StrCat("set metric ", kOspfDrainMetric));
    }
    return out;
  }
  const std::string bandwidth = absl::StrCat(
      "set extcommunity bandwidth", " ",
      intent.drained ? kDrainBandwidthMbps : intent.bandwidth_mbps);

  // Sequence numbers the VIPs' entries already have in `running`.
  std::map<IpAddress, int> seqs;
  std::set<int> used;
  for (const auto& [entry, lines] : running.route_map_entries) {
    if (MapOfEntry(entry) != kBgpRouteMap) continue;
    int seq = SeqOfEntry(entry);
    if (seq < kFirstVipSeq || seq >= kCatchAllSeq) continue;
    for (const auto& [vip, communities] : intent.communities) {
      if (lines.contains(MatchPrefixListLine(vip)) && !seqs.contains(vip) &&
          !used.contains(seq)) {
        seqs[vip] = seq;
        used.insert(seq);
      }
    }
  }
  int next = kFirstVipSeq;
  for (const auto& [vip, communities] : intent.communities) {
    if (seqs.contains(vip)) continue;
    while (used.contains(next)) ++next;
    if (next >= kCatchAllSeq) {
      return absl::ResourceExhaustedError(
          absl::StrCat("more than ", kCatchAllSeq - kFirstVipSeq,
                       " VIPs with BGP communities: route-map ", kBgpRouteMap,
                       " has no sequence number left for ", vip.ToString()));
    }
    seqs[vip] = next;
    used.insert(next);
  }

  for (const auto& [vip, communities] : intent.communities) {
    out.prefix_list_lines.insert(PrefixListLine(vip));
    std::set<std::string>& lines =
        out.route_map_entries[EntryName(kBgpRouteMap, seqs[vip])];
    lines.insert(match_device);
    lines.insert(MatchPrefixListLine(vip));
    lines.insert(bandwidth);
    std::vector<std::string> words;
    for (uint32_t c : communities) words.push_back(CommunityText(c));
    if (intent.drained && intent.drain_gshut) {
      words.push_back(CommunityText(kGracefulShutdown));
    }
    lines.insert(CanonicalLine(
        absl::StrCat("set community ", absl::StrJoin(words, " "))));
  }
  std::set<std::string>& catch_all =
      out.route_map_entries[EntryName(kBgpRouteMap, kCatchAllSeq)];
  catch_all.insert(match_device);
  catch_all.insert(bandwidth);
  if (intent.drained && intent.drain_gshut) {
    catch_all.insert(
        absl::StrCat("set community ", CommunityText(kGracefulShutdown)));
  }
  return out;
}

std::vector<std::string> DiffCommands(const OwnedConfig& running,
                                      const OwnedConfig& desired,
                                      const std::set<std::string>& maps) {
  std::vector<std::string> out;
  // 1. New prefix-lists, before the entries that match them.
  for (const std::string& line : desired.prefix_list_lines) {
    if (!running.prefix_list_lines.contains(line)) out.push_back(line);
  }
  // 2. Entries created or changed in place.
  static const std::set<std::string> kNone;
  for (const auto& [entry, want] : desired.route_map_entries) {
    auto it = running.route_map_entries.find(entry);
    const std::set<std::string>& have =
        it == running.route_map_entries.end() ? kNone : it->second;
    if (it != running.route_map_entries.end() && have == want) continue;
    std::set<std::string> wanted_keys;
    for (const std::string& line : want) wanted_keys.insert(LineKey(line));
    std::vector<std::string> block;
    for (const std::string& line : have) {
      if (!want.contains(line) && !wanted_keys.contains(LineKey(line))) {
        block.push_back(absl::StrCat("no ", line));
      }
    }
    // Match lines first: an entry is never briefly wider than meant.
    for (bool match : {true, false}) {
      for (const std::string& line : want) {
        if (IsMatchLine(line) == match && !have.contains(line)) {
          block.push_back(line);
        }
      }
    }
    out.push_back(entry);
    out.insert(out.end(), block.begin(), block.end());
    out.emplace_back("exit");
  }
  // 3. Entries no longer wanted (never the catch-all: it is always wanted).
  for (const auto& [entry, have] : running.route_map_entries) {
    if (!maps.contains(MapOfEntry(entry))) continue;
    if (desired.route_map_entries.contains(entry)) continue;
    if (SeqOfEntry(entry) == kCatchAllSeq) continue;
    out.push_back(absl::StrCat("no ", entry));
  }
  // 4. Old prefix-lists, after the entries that used them are gone.
  for (const std::string& line : running.prefix_list_lines) {
    if (!desired.prefix_list_lines.contains(line)) {
      out.push_back(absl::StrCat("no ", line));
    }
  }
  return out;
}

}  // namespace anylb::routing::announce
