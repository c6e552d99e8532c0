package bot

import "github.com/prometheus/client_golang/prometheus"

// watchMetrics are the watcher's and the schedules' series, labelled by target.
type watchMetrics struct {
	memory     *prometheus.GaugeVec
	orphans    *prometheus.GaugeVec
	symptoms   *prometheus.CounterVec
	overBudget *prometheus.CounterVec
	scheduled  *prometheus.CounterVec
}

// scheduleResults are what a scheduled run's occurrence did.
var scheduleResults = []string{"started", "approval", "nothing", "skipped", "failed"}

func newWatchMetrics(register func(prometheus.Collector)) *watchMetrics {
	w := &watchMetrics{
		memory: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sessionbot_watch_memory_percent",
			Help: "used_memory as a percentage of maxmemory at the watcher's last check (the fullest master; 0: no maxmemory)."}, []string{"target"}),
		orphans: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sessionbot_watch_orphans",
			Help: "Session keys without a TTL at the watcher's last check (a lower bound when its key budget was reached)."}, []string{"target"}),
		symptoms: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sessionbot_watch_symptoms_total",
			Help: "Symptoms posted by the watcher, by target and symptom (memory, orphans)."}, []string{"target", "symptom"}),
		overBudget: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sessionbot_watch_over_budget_total",
			Help: "Watcher checks that stopped at WATCH_MAX_KEYS before counting every session key."}, []string{"target"}),
		scheduled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sessionbot_scheduled_runs_total",
			Help: "Scheduled cleanups by target and result: started, approval (an approval request was posted), nothing (nothing matched), skipped (a job was running), failed."},
			[]string{"target", "result"}),
	}
	for _, c := range []prometheus.Collector{w.memory, w.orphans, w.symptoms, w.overBudget, w.scheduled} {
		register(c)
	}
	return w
}

// watchTarget creates a target's series at zero, so that alerts have something to compare.
func (m *Metrics) watchTarget(target string) {
	if m == nil {
		return
	}
	m.watch.memory.WithLabelValues(target)
	m.watch.orphans.WithLabelValues(target)
	m.watch.overBudget.WithLabelValues(target)
	for _, s := range []string{symptomMemory, symptomOrphans} {
		m.watch.symptoms.WithLabelValues(target, s)
	}
	for _, r := range scheduleResults {
		m.watch.scheduled.WithLabelValues(target, r)
	}
}

func (m *Metrics) watchReading(target string, r reading) {
	if m == nil {
		return
	}
	m.watch.memory.WithLabelValues(target).Set(r.percent())
	m.watch.orphans.WithLabelValues(target).Set(float64(r.Orphans))
}

func (m *Metrics) watchSymptom(target, symptom string) {
	if m != nil {
		m.watch.symptoms.WithLabelValues(target, symptom).Inc()
	}
}

func (m *Metrics) watchOverBudget(target string) {
	if m != nil {
		m.watch.overBudget.WithLabelValues(target).Inc()
	}
}

func (m *Metrics) scheduledRun(target, result string) {
	if m != nil {
		m.watch.scheduled.WithLabelValues(target, known(result, scheduleResults)).Inc()
	}
}
