package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// result is one run's figures.
type result struct {
	run, candidate int
	rollout        int64
	// judged is the candidate requests in the judge's Fail verdict.
	judged uint64
	// decided is the rolled_back transition; inEffect is when the
	// rollout was stored as in effect, after ApplySplit swapped routes.
	decided, inEffect time.Time
	// gateway and client are the candidate's answers as the gateway
	// logged them and as the client read them.
	gateway, client seen
	clientLast      time.Time
	// late is how far behind its schedule the load generator sent its
	// most delayed request from a second before the candidate's first
	// answer to the swap, and busy the machine's CPU use in percent over
	// the run: a loaded machine thins the canary's traffic and delays
	// every step, so runs are told apart by these.
	late, busy float64
	// setup and started are when the run began setting up and when it
	// asked for the rollout.
	setup, started time.Time
}

// seen is one side's view of the candidate's answers.
type seen struct {
	// answered and failed count them all, beforeSwap and
	// failedBeforeSwap those that came before the swap was in effect.
	answered, failed, beforeSwap, failedBeforeSwap int
	// first and firstFail are the first answer and the first failed one.
	first, firstFail time.Time
}

func (s *seen) add(at time.Time, bad bool, swap time.Time) {
	s.answered++
	if s.first.IsZero() || at.Before(s.first) {
		s.first = at
	}
	if bad {
		s.failed++
		if s.firstFail.IsZero() || at.Before(s.firstFail) {
			s.firstFail = at
		}
	}
	if !at.After(swap) {
		s.beforeSwap++
		if bad {
			s.failedBeforeSwap++
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

const resultHeader = `                    |              gateway's view               |          client's view                      | machine
run version judged  | answers (5xx)  first→decided  first→swap  5xx→swap | answers (5xx)  first→swap  5xx→swap  first→last | late  busy
                    |  before swap       ms            ms          ms    |  before swap       ms         ms        ms      |  ms     %`

func (r result) line() string {
	g, c := r.gateway, r.client
	return fmt.Sprintf("%3d %7d %6d  | %7d (%3d)  %13.1f  %10.1f  %8.1f | %7d (%3d)  %10.1f  %8.1f  %10.1f | %5.0f  %4.0f",
		r.run, r.candidate, r.judged,
		g.beforeSwap, g.failedBeforeSwap, ms(r.decided.Sub(g.first)), ms(r.inEffect.Sub(g.first)), ms(r.inEffect.Sub(g.firstFail)),
		c.beforeSwap, c.failedBeforeSwap, ms(r.inEffect.Sub(c.first)), ms(r.inEffect.Sub(c.firstFail)), ms(r.clientLast.Sub(c.first)), r.late, r.busy)
}

// medianMax is the median (the mean of the middle two for an even count)
// and the maximum of xs.
func medianMax(xs []float64) (med, mx float64) {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		med = s[n/2]
	} else {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return med, s[n-1]
}

// onSchedule is how late (ms) the load generator may be during a run
// for the run to count as one the machine's other work did not distort.
const onSchedule = 10

func summarize(all []result, load *openLoad, m machine, c config) {
	var kept []result
	for _, r := range all {
		if r.late <= onSchedule {
			kept = append(kept, r)
		}
	}
	figures(fmt.Sprintf("over all %d runs", len(all)), all)
	if len(kept) > 0 && len(kept) < len(all) {
		figures(fmt.Sprintf("over the %d runs in which the load generator kept its schedule (at most %d ms late)", len(kept), onSchedule), kept)
	}
	loadFigures(load, m, c)
}

func figures(title string, rs []result) {
	fig := func(name string, f func(result) float64, unit string) {
		xs := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = f(r)
		}
		med, mx := medianMax(xs)
		fmt.Printf("  %-58s median %7.1f  max %7.1f %s\n", name, med, mx, unit)
	}
	fmt.Printf("\n%s:\n", title)
	fig("canary requests the judge counted at its Fail", func(r result) float64 { return float64(r.judged) }, "requests")
	fig("canary answers before the swap (gateway's log)", func(r result) float64 { return float64(r.gateway.beforeSwap) }, "requests")
	fig("  of which failed", func(r result) float64 { return float64(r.gateway.failedBeforeSwap) }, "requests")
	fig("canary answers in all (gateway's log)", func(r result) float64 { return float64(r.gateway.answered) }, "requests")
	fig("first canary answer → rollback decided (gateway's time)", func(r result) float64 { return ms(r.decided.Sub(r.gateway.first)) }, "ms")
	fig("first canary answer → rollback in effect (gateway's time)", func(r result) float64 { return ms(r.inEffect.Sub(r.gateway.first)) }, "ms")
	fig("first failed answer → rollback in effect (gateway's time)", func(r result) float64 { return ms(r.inEffect.Sub(r.gateway.firstFail)) }, "ms")
	fig("rollback decided → in effect (store, swap, store)", func(r result) float64 { return ms(r.inEffect.Sub(r.decided)) }, "ms")
	fig("canary answers before the swap (client)", func(r result) float64 { return float64(r.client.beforeSwap) }, "requests")
	fig("first canary answer → rollback in effect (client's time)", func(r result) float64 { return ms(r.inEffect.Sub(r.client.first)) }, "ms")
	fig("first failed answer → rollback in effect (client's time)", func(r result) float64 { return ms(r.inEffect.Sub(r.client.firstFail)) }, "ms")
	fig("first canary answer → its last answer (client)", func(r result) float64 { return ms(r.clientLast.Sub(r.client.first)) }, "ms")
}

func loadFigures(load *openLoad, m machine, c config) {

	// The load as it was really sent: an open loop that fell behind
	// would make the canary's traffic thinner than the rate says.
	all := load.answers()
	var late []float64
	errs, transport, noVersion := 0, 0, 0
	var lat []float64
	for _, a := range all {
		late = append(late, ms(a.sent-a.scheduled))
		lat = append(lat, ms(a.done-a.sent))
		switch {
		case a.failed:
			transport++
		case a.status >= 500:
			errs++
		}
		if !a.failed && a.version == 0 {
			noVersion++
		}
	}
	secs := all[len(all)-1].scheduled.Seconds()
	slices.Sort(late)
	slices.Sort(lat)
	q := func(xs []float64, p float64) float64 { return xs[min(len(xs)-1, int(p*float64(len(xs))))] }
	load.mu.Lock()
	skipped, stalls := load.skipped, slices.Clone(load.stalls)
	load.mu.Unlock()
	fmt.Printf("\nload: %d requests in %.1f s (%.0f/s; scheduled %d/s; %d skipped with %d outstanding); sent late by p50 %.2f ms, p99 %.2f ms, max %.1f ms; answer time p50 %.2f ms, p99 %.2f ms, max %.1f ms; %d 5xx answers, %d transport errors, %d answers without X-Slipway-Version\n",
		len(all), secs, float64(len(all))/secs, c.rate, skipped, maxInflight, q(late, 0.5), q(late, 0.99), late[len(late)-1], q(lat, 0.5), q(lat, 0.99), lat[len(lat)-1], errs, transport, noVersion)
	if len(stalls) > 0 {
		slices.SortFunc(stalls, func(a, b span) int { return int((b.to - b.from) - (a.to - a.from)) })
		var w []string
		for _, st := range stalls[:min(len(stalls), 8)] {
			w = append(w, fmt.Sprintf("%.0f ms at %s", ms(st.to-st.from+load.every), load.at(st.from).Format("15:04:05.000")))
		}
		fmt.Printf("the longest stretches of skipped requests (the server answering none of %d outstanding): %s\n", maxInflight, strings.Join(w, ", "))
	}
	fmt.Printf("machine during the runs (%d CPUs): busy %.0f %%, load average %s → %s; slipway server used %s; this load generator %.0f %% of a CPU\n",
		m.cpus, m.busy, m.loadBefore, m.loadAfter, m.serverCPU, m.selfCPU)
}

// machine is how loaded the machine was while the runs ran.
type machine struct {
	cpus                  int
	busy                  float64 // percent of all CPUs
	loadBefore, loadAfter string
	serverCPU             string
	selfCPU               float64 // percent of one CPU

	pid                        int
	start                      time.Time
	idle0, total0, srv0, self0 float64
}

func startMachine(pid int) *machine {
	m := &machine{pid: pid, start: time.Now(), loadBefore: loadavg()}
	m.idle0, m.total0, m.cpus = cpuStat()
	m.srv0 = procCPU(pid)
	m.self0 = selfCPU()
	return m
}

func (m *machine) stop() machine {
	idle, total, _ := cpuStat()
	if total > m.total0 {
		m.busy = 100 * (1 - (idle-m.idle0)/(total-m.total0))
	}
	m.loadAfter = loadavg()
	wall := time.Since(m.start).Seconds()
	m.serverCPU = "n/a"
	if m.pid > 0 {
		m.serverCPU = fmt.Sprintf("%.0f %% of a CPU", 100*(procCPU(m.pid)-m.srv0)/wall)
	}
	m.selfCPU = 100 * (selfCPU() - m.self0) / wall
	return *m
}

// loadavg is the 1, 5 and 15 minute load averages.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "n/a"
	}
	return strings.Join(f[:3], " ")
}

// cpuStat reads the idle and total jiffies of all CPUs, and their count.
func cpuStat() (idle, total float64, cpus int) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 4 && f[0] == "cpu":
			for i, x := range f[1:] {
				v, _ := strconv.ParseFloat(x, 64)
				total += v
				if i == 3 || i == 4 { // idle, iowait
					idle += v
				}
			}
		case len(f) > 0 && strings.HasPrefix(f[0], "cpu"):
			cpus++
		}
	}
	return idle, total, cpus
}

// clockTicks is Linux's USER_HZ, the unit of /proc/PID/stat's times.
const clockTicks = 100

// procCPU is the user and system CPU seconds of process pid.
func procCPU(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces; the fields after it do not.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / clockTicks
}

func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}
