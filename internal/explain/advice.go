package explain

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// advice ranks what would relieve the table, most relief first. Every
// line carries the exact command; none is run.
func (an *Analysis) advice(r *Report) []Advice {
	var out []Advice
	out = append(out, an.timeoutAdvice(r)...)
	if a, ok := an.notrackAdvice(r); ok {
		out = append(out, a)
	}
	out = append(out, an.limitAdvice(r)...)
	slices.SortStableFunc(out, func(a, b Advice) int {
		return cmp.Compare(max(uint64(b.Frees), b.Headroom), max(uint64(a.Frees), a.Headroom))
	})
	for i := range out {
		out[i].Rank = i + 1
	}
	if out == nil {
		out = []Advice{}
	}
	return out
}

// timeoutAdvice proposes, per timeout sysctl governing a meaningful share,
// one lower value: the kernel default when the value is above it, else the
// user's value, else half; only when it frees entries.
func (an *Analysis) timeoutAdvice(r *Report) []Advice {
	type agg struct {
		cur            uint32
		value          uint32
		label          string
		now, within60  int
		classes        []string
		exact, present bool
	}
	bySys := map[string]*agg{}
	var order []string
	for _, cl := range r.Classes {
		if cl.Sysctl == "" || cl.Value == nil || len(cl.WhatIf) == 0 {
			continue
		}
		pick := pickWhatIf(cl)
		a := bySys[cl.Sysctl]
		if a == nil {
			a = &agg{cur: *cl.Value, value: pick.Value, label: pick.Label, exact: true}
			bySys[cl.Sysctl] = a
			order = append(order, cl.Sysctl)
		}
		// Classes sharing a sysctl share its candidates (same current
		// value), so the same pick applies to each.
		for _, w := range cl.WhatIf {
			if w.Value == a.value {
				a.now += w.FreedNow
				a.within60 += w.FreedWithin60s
				a.present = true
			}
		}
		a.classes = append(a.classes, cl.Proto+" "+cl.State)
		a.exact = a.exact && cl.Exact
	}
	var out []Advice
	for _, name := range order {
		a := bySys[name]
		if !a.present || (a.now == 0 && a.within60 == 0) {
			continue
		}
		why := map[string]string{"default": "the kernel default", "half": "half the current value", "user": "your value"}[a.label]
		est := "exact"
		if !a.exact {
			est = "estimated"
		}
		text := fmt.Sprintf("lower %s from %d s to %d s (%s) for %s: frees %s now, %d within 60 s (%s); "+
			"idle flows of these states are forgotten sooner", name, a.cur, a.value, why,
			strings.Join(a.classes, ", "), entries(a.now), a.within60, est)
		out = append(out, Advice{Kind: "timeout", Text: text, Frees: a.now,
			Command: an.settings.CommandPrefix + fmt.Sprintf("sysctl -w net.netfilter.%s=%d", name, a.value)})
	}
	return out
}

// pickWhatIf chooses the value a timeout advice proposes.
func pickWhatIf(cl Class) WhatIf {
	for _, label := range []string{"default", "user", "half"} {
		for _, w := range cl.WhatIf {
			if w.Label == label {
				return w
			}
		}
	}
	return cl.WhatIf[0]
}

// notrackAdvice proposes exempting a destination port whose flows
// dominate the table from tracking.
func (an *Analysis) notrackAdvice(r *Report) (Advice, bool) {
	if len(r.Top.Dport) == 0 || r.Table.Flows == 0 {
		return Advice{}, false
	}
	top := r.Top.Dport[0]
	proto, port, ok := strings.Cut(top.Key, "/")
	if !ok || (proto != "udp" && proto != "tcp") {
		return Advice{}, false
	}
	if float64(top.Flows) < dominatingShare*float64(r.Table.Flows) || top.Flows < 2 {
		return Advice{}, false
	}
	caution := "stateless traffic such as DNS on a resolver or a health-check port"
	if proto == "tcp" {
		caution = "only if no NAT and no ct state rule needs these TCP flows"
	}
	text := fmt.Sprintf("exempt %s from connection tracking (%s): frees its %s (%.0f%% of the table) and keeps new ones out; "+
		"rules that match ct state or NAT no longer see this traffic", top.Key, caution, entries(top.Flows), 100*top.Share)
	if an.settings.Tracker {
		text += " (conntop's tracker models the kernel: the rule is for that kernel)"
	}
	const tbl = "conntop_notrack"
	ruleset := fmt.Sprintf("add table inet %[1]s; "+
		"add chain inet %[1]s pre { type filter hook prerouting priority raw; }; "+
		"add chain inet %[1]s out { type filter hook output priority raw; }; "+
		"add rule inet %[1]s pre %[2]s dport %[3]s notrack; add rule inet %[1]s pre %[2]s sport %[3]s notrack; "+
		"add rule inet %[1]s out %[2]s dport %[3]s notrack; add rule inet %[1]s out %[2]s sport %[3]s notrack",
		tbl, proto, port)
	return Advice{Kind: "notrack", Text: text, Frees: top.Flows,
		Command: an.settings.CommandPrefix + "nft '" + ruleset + "'"}, true
}

// limitAdvice proposes raising the limit together with the buckets when
// the table is near full or dropping, and the buckets alone when chains
// are long.
func (an *Analysis) limitAdvice(r *Report) []Advice {
	t := r.Table
	s := an.settings
	var out []Advice
	pressured := t.Max > 0 && (t.Fill >= pressureFill || t.Stats.Drop > 0 || t.Stats.EarlyDrop > 0)
	if pressured {
		newMax := nextPow2(max(2*t.Max, 2*t.Count))
		head := newMax - t.Max
		if s.Tracker {
			out = append(out, Advice{Kind: "max", Headroom: head,
				Text: fmt.Sprintf("raise the tracker's limit from %d to %d: %s of headroom",
					t.Max, newMax, entries(int(head))),
				Command: fmt.Sprintf("conntop --max %d", newMax)})
		} else {
			newBuckets := max(t.Buckets, newMax)
			mem := head*uint64(t.Memory.PerEntry) + (newBuckets-t.Buckets)*BucketBytes
			out = append(out, Advice{Kind: "max", Headroom: head,
				Text: fmt.Sprintf("raise nf_conntrack_max from %d to %d with nf_conntrack_buckets %d (machine-wide, initial namespace): "+
					"%s of headroom; costs about %s of kernel memory only as it fills (%d bytes an entry, %s), "+
					"plus %s of buckets at once", t.Max, newMax, newBuckets, entries(int(head)), mib(mem), t.Memory.PerEntry,
					t.Memory.From, mib((newBuckets-t.Buckets)*BucketBytes)),
				Command: fmt.Sprintf("sysctl -w net.netfilter.nf_conntrack_max=%d net.netfilter.nf_conntrack_buckets=%d", newMax, newBuckets)})
		}
	}
	if !s.Tracker && t.Buckets > 0 && !pressured && (t.Hash.Load > 1 || t.Stats.ChainTooLong > 0) {
		nb := nextPow2(max(t.Max, t.Count))
		if nb > t.Buckets {
			out = append(out, Advice{Kind: "buckets",
				Text: fmt.Sprintf("raise nf_conntrack_buckets from %d to %d (machine-wide): %s; costs %s",
					t.Buckets, nb, t.Hash.Verdict, mib((nb-t.Buckets)*BucketBytes)),
				Command: fmt.Sprintf("sysctl -w net.netfilter.nf_conntrack_buckets=%d", nb)})
		}
	}
	return out
}

// mib formats a byte count in binary units.
func mib(b uint64) string {
	switch {
	case b >= 10<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", b)
}

// entries says "1 entry" or "N entries".
func entries(n int) string {
	if n == 1 {
		return "1 entry"
	}
	return fmt.Sprintf("%d entries", n)
}
