// Package podautoscaler is the horizontal pod autoscaler controller: every sync period, and
// when an autoscaler's spec changes, it reads the target's scale subresource, fetches the
// metrics of the autoscaler's spec for the target's pods, computes the replicas they call for
// within minReplicas, maxReplicas and the scaling behavior, scales the target and writes the
// autoscaler's status, as upstream's (autoscaling/v2 semantics).
package podautoscaler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keelson/keelson/controllers/manager"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	autoscalinglisters "k8s.io/client-go/listers/autoscaling/v2"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/scale"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
	customclient "k8s.io/metrics/pkg/client/custom_metrics"
	externalclient "k8s.io/metrics/pkg/client/external_metrics"
)

// Upstream's defaults for kube-controller-manager's --horizontal-pod-autoscaler-* flags.
const (
	SyncPeriod                   = 15 * time.Second
	DownscaleStabilizationWindow = 5 * time.Minute
	Tolerance                    = 0.1
	CPUInitializationPeriod      = 5 * time.Minute
	InitialReadinessDelay        = 30 * time.Second

	controllerName = "horizontal-pod-autoscaler"
	// mapperResetPeriod is how often the kinds and the custom metrics API versions are
	// rediscovered, as kube-controller-manager resets its REST mapper.
	mapperResetPeriod = 30 * time.Second
)

type controller struct {
	*manager.Loop

	client   kubernetes.Interface
	hpas     autoscalinglisters.HorizontalPodAutoscalerLister
	calc     *calculator
	recorder record.EventRecorder
	hist     *history
	// selectors are the selectors of the autoscalers, to find the pods several select.
	selectors *selectorStore
	now       func() time.Time

	// mapper finds the resource of a target's kind, scales reads and writes its scale.
	mapper *restmapper.DeferredDiscoveryRESTMapper
	scales scale.ScalesGetter
	// customAPIs, if set, is the discovery of the custom metrics API, renewed with the mapper.
	customAPIs customclient.AvailableAPIsGetter

	syncPeriod, downscaleWindow time.Duration
	tolerance                   float64
}

// New registers the controller on c's informers; it reads metrics from the metrics APIs.
func New(c *manager.Context) (manager.Controller, error) {
	return newController(c, nil)
}

// newController builds the controller; metrics, if not nil, replaces the metrics APIs.
func newController(c *manager.Context, metrics metricsSource) (*controller, error) {
	hpas := c.Informers.Autoscaling().V2().HorizontalPodAutoscalers()
	pods := c.Informers.Core().V1().Pods()
	disco := memory.NewMemCacheClient(c.Client.Discovery())
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(disco)
	scales, err := scale.NewForConfig(c.Config, mapper, dynamic.LegacyAPIPathResolverFunc, scale.NewDiscoveryScaleKindResolver(c.Client.Discovery()))
	if err != nil {
		return nil, err
	}
	ctl := &controller{
		client: c.Client, hpas: hpas.Lister(), recorder: c.Recorder(controllerName), hist: newHistory(),
		selectors: newSelectorStore(), now: time.Now, mapper: mapper, scales: scales,
		syncPeriod: SyncPeriod, downscaleWindow: DownscaleStabilizationWindow, tolerance: Tolerance,
	}
	if metrics == nil {
		resources, err := metricsclient.NewForConfig(c.Config)
		if err != nil {
			return nil, err
		}
		external, err := externalclient.NewForConfig(c.Config)
		if err != nil {
			return nil, err
		}
		ctl.customAPIs = customclient.NewAvailableAPIsGetter(c.Client.Discovery())
		metrics = &apiMetrics{resource: resources.MetricsV1beta1(), custom: customclient.NewForConfig(c.Config, mapper, ctl.customAPIs), external: external}
	}
	ctl.calc = &calculator{metrics: metrics, pods: pods.Lister(), cpuInitializationPeriod: CPUInitializationPeriod,
		initialReadinessDelay: InitialReadinessDelay, now: ctl.now}
	ctl.Loop = manager.NewLoop(controllerName, 5, c.Log, ctl.sync)
	ctl.Synced = []cache.InformerSynced{hpas.Informer().HasSynced, pods.Informer().HasSynced}
	if _, err := hpas.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    ctl.added,
		UpdateFunc: ctl.updated,
		DeleteFunc: ctl.deleted,
	}); err != nil {
		return nil, err
	}
	return ctl, nil
}

// Run runs the loop, and renews the discovery of kinds and metrics APIs, until ctx is done.
func (c *controller) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(mapperResetPeriod)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				c.mapper.Reset()
				if c.customAPIs != nil {
					c.customAPIs.Invalidate()
				}
			}
		}
	}()
	err := c.Loop.Run(ctx)
	<-done
	return err
}

// added syncs a new autoscaler at once; its selector is tracked from its first sync.
func (c *controller) added(o any) {
	key, err := cache.MetaNamespaceKeyFunc(o)
	if err != nil {
		return
	}
	c.selectors.putIfAbsent(key)
	c.Enqueue(key)
}

// updated syncs an autoscaler at once when its spec changed (its generation moved); other
// changes, such as the controller's own status writes, wait for the sync period.
func (c *controller) updated(old, cur any) {
	key, err := cache.MetaNamespaceKeyFunc(cur)
	if err != nil {
		return
	}
	o, ok1 := old.(*autoscalingv2.HorizontalPodAutoscaler)
	n, ok2 := cur.(*autoscalingv2.HorizontalPodAutoscaler)
	if ok1 && ok2 && o.Generation != n.Generation {
		c.added(cur)
		return
	}
	c.Queue.AddAfter(key, c.syncPeriod)
}

func (c *controller) deleted(o any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(o)
	if err != nil {
		return
	}
	c.Queue.Forget(key)
	c.selectors.delete(key)
	c.hist.forget(key)
}

// sync reconciles one autoscaler and looks again after the sync period, whatever happened:
// failures show in the autoscaler's conditions and events, as upstream's.
func (c *controller) sync(ctx context.Context, key string) (time.Duration, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	hpa, err := c.hpas.HorizontalPodAutoscalers(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.hist.forget(key)
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if err := c.reconcile(ctx, key, hpa.DeepCopy()); err != nil {
		c.Log.Info("autoscaler not reconciled", "hpa", key, "err", err)
	}
	return c.syncPeriod, nil
}

// reconcile is one pass over an autoscaler, which it may modify.
func (c *controller) reconcile(ctx context.Context, key string, hpa *autoscalingv2.HorizontalPodAutoscaler) (retErr error) {
	original := hpa.Status.DeepCopy()
	ref := hpa.Spec.ScaleTargetRef
	target := fmt.Sprintf("%s/%s/%s", ref.Kind, hpa.Namespace, ref.Name)

	sc, gr, err := c.getScale(ctx, hpa)
	if err != nil {
		c.recorder.Event(hpa, corev1.EventTypeWarning, "FailedGetScale", err.Error())
		setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionFalse, "FailedGetScale", "the HPA controller was unable to get the target's current scale: %v", err)
		c.writeStatus(ctx, original, hpa)
		return fmt.Errorf("failed to query scale subresource for %s: %w", target, err)
	}
	setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, "SucceededGetScale", "the HPA controller was able to get the target's current scale")
	current := sc.Spec.Replicas
	now := c.now()
	c.hist.recordInitial(key, current, now)

	minReplicas := int32(1)
	if hpa.Spec.MinReplicas != nil {
		minReplicas = *hpa.Spec.MinReplicas
	}
	scaledToZero := conditionTrue(hpa, autoscalingv2.ScaledToZero)
	objectOrExternal := hasObjectOrExternalMetrics(hpa)

	var (
		desired  int32
		reason   string
		statuses []autoscalingv2.MetricStatus
		rescale  = true
		compute  = true
	)
	switch {
	case current == 0:
		// A target at zero is left alone unless the controller scaled it there itself and
		// may scale it back: it was scaled to zero by hand otherwise.
		if !((minReplicas != 0 && scaledToZero) || (scaledToZero && objectOrExternal)) {
			compute, rescale = false, false
			setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, "ScalingDisabled", "scaling is disabled since the replica count of the target is zero")
		}
	case current > hpa.Spec.MaxReplicas:
		compute, desired, reason = false, hpa.Spec.MaxReplicas, "Current number of replicas above Spec.MaxReplicas"
	case current < minReplicas:
		compute, desired, reason = false, minReplicas, "Current number of replicas below Spec.MinReplicas"
	}

	if compute {
		metricDesired, metricName, sts, err := c.computeReplicas(ctx, hpa, sc)
		statuses = sts
		if err != nil && metricDesired == -1 {
			c.setStatus(hpa, current, hpa.Status.DesiredReplicas, statuses, false)
			c.writeStatus(ctx, original, hpa)
			c.recorder.Event(hpa, corev1.EventTypeWarning, "FailedComputeMetricsReplicas", err.Error())
			return fmt.Errorf("failed to compute desired number of replicas based on listed metrics for %s: %w", target, err)
		}
		// Some metrics failed but the others call for scaling up: scale, then report.
		retErr = err
		rescaleMetric := ""
		if metricDesired > desired {
			desired, rescaleMetric = metricDesired, metricName
		}
		if desired > current {
			reason = fmt.Sprintf("%s above target", rescaleMetric)
		}
		if desired < current {
			reason = "All metrics below target"
		}
		if hpa.Spec.Behavior == nil {
			desired = c.normalize(hpa, key, current, desired, minReplicas, now)
		} else {
			desired = c.normalizeWithBehavior(hpa, key, current, desired, minReplicas, now)
		}
		if current == 0 && minReplicas != 0 && scaledToZero && desired < minReplicas {
			desired = minReplicas
			if reason == "" {
				reason = "Current number of replicas below Spec.MinReplicas"
			}
		}
		rescale = desired != current
	}

	if rescale {
		if err := c.updateScale(ctx, hpa, gr, sc, desired); err != nil {
			c.recorder.Eventf(hpa, corev1.EventTypeWarning, "FailedRescale", "New size: %d; reason: %s; error: %v", desired, reason, err.Error())
			setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionFalse, "FailedUpdateScale", "the HPA controller was unable to update the target scale: %v", err)
			c.setStatus(hpa, current, hpa.Status.DesiredReplicas, statuses, false)
			c.writeStatus(ctx, original, hpa)
			return fmt.Errorf("failed to rescale %s: %w", target, err)
		}
		setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, "SucceededRescale", "the HPA controller was able to update the target scale to %d", desired)
		c.recorder.Eventf(hpa, corev1.EventTypeNormal, "SuccessfulRescale", "New size: %d; reason: %s", desired, reason)
		c.hist.recordScale(hpa.Spec.Behavior, key, current, desired, c.now())
		if current > 0 && desired == 0 && minReplicas == 0 && objectOrExternal {
			setCondition(hpa, autoscalingv2.ScaledToZero, corev1.ConditionTrue, "ScaledToZero", "the HPA controller scaled the workload to zero")
		} else {
			setCondition(hpa, autoscalingv2.ScaledToZero, corev1.ConditionFalse, "NotScaledToZero", "the HPA controller did not scale the workload to zero")
		}
	} else {
		desired = current
	}
	c.setStatus(hpa, current, desired, statuses, rescale)
	if err := c.writeStatus(ctx, original, hpa); err != nil {
		return err
	}
	return retErr
}

// getScale reads the target's scale through the first of its kind's resources that serves one.
func (c *controller) getScale(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler) (*autoscalingv1.Scale, schema.GroupResource, error) {
	ref := hpa.Spec.ScaleTargetRef
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return nil, schema.GroupResource{}, err
	}
	mappings, err := c.mapper.RESTMappings(schema.GroupKind{Group: gv.Group, Kind: ref.Kind})
	if err != nil {
		// The kind may be new since the last discovery.
		c.mapper.Reset()
		return nil, schema.GroupResource{}, err
	}
	var first error
	for _, m := range mappings {
		gr := m.Resource.GroupResource()
		sc, err := c.scales.Scales(hpa.Namespace).Get(ctx, gr, ref.Name, metav1.GetOptions{})
		if err == nil {
			return sc, gr, nil
		}
		if first == nil {
			first = err
		}
	}
	if first == nil {
		first = errors.New("unrecognized resource")
	}
	return nil, schema.GroupResource{}, first
}

// updateScale sets the target's replicas, reading the scale again after a conflict.
func (c *controller) updateScale(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler, gr schema.GroupResource, sc *autoscalingv1.Scale, replicas int32) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sc.Spec.Replicas = replicas
		_, err := c.scales.Scales(hpa.Namespace).Update(ctx, gr, sc, metav1.UpdateOptions{})
		if err == nil {
			return nil
		}
		if latest, getErr := c.scales.Scales(hpa.Namespace).Get(ctx, gr, hpa.Spec.ScaleTargetRef.Name, metav1.GetOptions{}); getErr == nil {
			*sc = *latest
		}
		return err
	})
}

// normalize stabilizes a recommendation over the scale-down window and brings it within
// min/max and the scale-up limit, for an autoscaler without behavior.
func (c *controller) normalize(hpa *autoscalingv2.HorizontalPodAutoscaler, key string, current, desired, minReplicas int32, now time.Time) int32 {
	stabilized := c.hist.stabilize(key, desired, c.downscaleWindow, now)
	if stabilized != desired {
		setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation")
	} else {
		setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, "ReadyForNewScale", "recommended size matches current size")
	}
	limited, reason, message := limitWithoutBehavior(current, stabilized, minReplicas, hpa.Spec.MaxReplicas)
	setLimited(hpa, limited != stabilized, reason, message)
	return limited
}

// normalizeWithBehavior stabilizes a recommendation over the behavior's windows and applies
// its rate policies and min/max.
func (c *controller) normalizeWithBehavior(hpa *autoscalingv2.HorizontalPodAutoscaler, key string, current, desired, minReplicas int32, now time.Time) int32 {
	up := defaultRules(hpa.Spec.Behavior.ScaleUp, true)
	down := defaultRules(hpa.Spec.Behavior.ScaleDown, false)
	if down.StabilizationWindowSeconds == nil {
		w := int32(c.downscaleWindow.Seconds())
		down.StabilizationWindowSeconds = &w
	}
	stabilized, reason, message := c.hist.stabilizeWithBehavior(key, current, desired, up, down, now)
	if stabilized != desired {
		setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, reason, "%s", message)
	} else {
		setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, "ReadyForNewScale", "recommended size matches current size")
	}
	limited, reason, message := c.hist.limitWithBehavior(key, current, stabilized, minReplicas, hpa.Spec.MaxReplicas, up, down, now)
	setLimited(hpa, limited != stabilized, reason, message)
	return limited
}

func setLimited(hpa *autoscalingv2.HorizontalPodAutoscaler, limited bool, reason, message string) {
	status := corev1.ConditionFalse
	if limited {
		status = corev1.ConditionTrue
	}
	setCondition(hpa, autoscalingv2.ScalingLimited, status, reason, "%s", message)
}

// setStatus rewrites the status around its conditions and last scale time.
func (c *controller) setStatus(hpa *autoscalingv2.HorizontalPodAutoscaler, current, desired int32, statuses []autoscalingv2.MetricStatus, rescaled bool) {
	generation := hpa.Generation
	hpa.Status = autoscalingv2.HorizontalPodAutoscalerStatus{
		ObservedGeneration: &generation,
		CurrentReplicas:    current,
		DesiredReplicas:    desired,
		LastScaleTime:      hpa.Status.LastScaleTime,
		CurrentMetrics:     statuses,
		Conditions:         hpa.Status.Conditions,
	}
	if rescaled {
		t := metav1.NewTime(c.now())
		hpa.Status.LastScaleTime = &t
	}
}

// writeStatus writes the status if it changed.
func (c *controller) writeStatus(ctx context.Context, original *autoscalingv2.HorizontalPodAutoscalerStatus, hpa *autoscalingv2.HorizontalPodAutoscaler) error {
	if apiequality.Semantic.DeepEqual(original, &hpa.Status) {
		return nil
	}
	if _, err := c.client.AutoscalingV2().HorizontalPodAutoscalers(hpa.Namespace).UpdateStatus(ctx, hpa, metav1.UpdateOptions{}); err != nil {
		c.recorder.Event(hpa, corev1.EventTypeWarning, "FailedUpdateStatus", err.Error())
		return fmt.Errorf("failed to update status for %s: %w", hpa.Name, err)
	}
	return nil
}

// computeReplicas computes the replicas each metric calls for and returns the highest, with
// the metric's description and the status of every metric. It returns -1 and an error when
// no metric could be computed, or some could not and the others would scale down; it returns
// a count and an error when some failed but the others scale up.
func (c *controller) computeReplicas(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler, sc *autoscalingv1.Scale) (int32, string, []autoscalingv2.MetricStatus, error) {
	selector, err := c.selectorOf(hpa, sc.Status.Selector)
	if err != nil {
		return -1, "", nil, err
	}
	specs := hpa.Spec.Metrics
	statuses := make([]autoscalingv2.MetricStatus, len(specs))
	var (
		replicas     int32
		metric       string
		invalid      int
		firstErr     error
		firstInvalid autoscalingv2.HorizontalPodAutoscalerCondition
	)
	for i, spec := range specs {
		r, name, cond, err := c.computeMetric(ctx, hpa, spec, sc.Spec.Replicas, sc.Status.Replicas, selector, &statuses[i])
		if err != nil {
			if invalid == 0 {
				firstInvalid, firstErr = cond, err
			}
			invalid++
			continue
		}
		if replicas == 0 || r > replicas {
			replicas, metric = r, name
		}
	}
	if firstErr != nil {
		firstErr = fmt.Errorf("invalid metrics (%v invalid out of %v), first error is: %w", invalid, len(specs), firstErr)
	}
	if invalid >= len(specs) || (invalid > 0 && replicas < sc.Spec.Replicas) {
		setCondition(hpa, firstInvalid.Type, firstInvalid.Status, firstInvalid.Reason, "%s", firstInvalid.Message)
		return -1, "", statuses, firstErr
	}
	setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionTrue, "ValidMetricFound", "the HPA was able to successfully calculate a replica count from %s", metric)
	return replicas, metric, statuses, firstErr
}

// selectorOf parses the scale's selector and checks that no other autoscaler selects the same
// pods, setting ScalingActive false if either fails.
func (c *controller) selectorOf(hpa *autoscalingv2.HorizontalPodAutoscaler, s string) (labels.Selector, error) {
	if s == "" {
		c.recorder.Event(hpa, corev1.EventTypeWarning, "SelectorRequired", "selector is required")
		setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, "InvalidSelector", "the HPA target's scale is missing a selector")
		return nil, errors.New("selector is required")
	}
	selector, err := labels.Parse(s)
	if err != nil {
		msg := fmt.Sprintf("couldn't convert selector into a corresponding internal selector object: %v", err)
		c.recorder.Event(hpa, corev1.EventTypeWarning, "InvalidSelector", msg)
		setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, "InvalidSelector", "%s", msg)
		return nil, errors.New(msg)
	}
	key := hpa.Namespace + "/" + hpa.Name
	if !c.selectors.putIfPresent(key, selector) {
		return nil, fmt.Errorf("HPA %s/%s was deleted during reconciliation", hpa.Namespace, hpa.Name)
	}
	pods, err := c.calc.pods.Pods(hpa.Namespace).List(selector)
	if err != nil {
		return nil, err
	}
	if others := c.selectors.matching(hpa.Namespace, pods, 2); len(others) > 1 {
		msg := fmt.Sprintf("pods by selector %v are controlled by more than one HPA (e.g. %v)", s, others)
		c.recorder.Event(hpa, corev1.EventTypeWarning, "AmbiguousSelector", msg)
		setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, "AmbiguousSelector", "%s", msg)
		return nil, errors.New(msg)
	}
	return selector, nil
}

// unableToCompute reports a metric that could not be computed: an event now, and the
// ScalingActive condition to set should no metric work.
func (c *controller) unableToCompute(hpa *autoscalingv2.HorizontalPodAutoscaler, reason string, err error) autoscalingv2.HorizontalPodAutoscalerCondition {
	c.recorder.Event(hpa, corev1.EventTypeWarning, reason, err.Error())
	return autoscalingv2.HorizontalPodAutoscalerCondition{Type: autoscalingv2.ScalingActive, Status: corev1.ConditionFalse, Reason: reason,
		Message: fmt.Sprintf("the HPA was unable to compute the replica count: %v", err)}
}

func (c *controller) tolerances(hpa *autoscalingv2.HorizontalPodAutoscaler) tolerances {
	t := tolerances{c.tolerance, c.tolerance}
	if b := hpa.Spec.Behavior; b != nil {
		if b.ScaleDown != nil && b.ScaleDown.Tolerance != nil {
			t.down = b.ScaleDown.Tolerance.AsApproximateFloat64()
		}
		if b.ScaleUp != nil && b.ScaleUp.Tolerance != nil {
			t.up = b.ScaleUp.Tolerance.AsApproximateFloat64()
		}
	}
	return t
}

// computeMetric computes the replicas one metric calls for and fills in its status. On
// failure it returns the condition to report.
func (c *controller) computeMetric(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler, spec autoscalingv2.MetricSpec,
	specReplicas, statusReplicas int32, selector labels.Selector, status *autoscalingv2.MetricStatus) (int32, string, autoscalingv2.HorizontalPodAutoscalerCondition, error) {
	none := autoscalingv2.HorizontalPodAutoscalerCondition{}
	tol := c.tolerances(hpa)
	ns := hpa.Namespace
	switch spec.Type {
	case autoscalingv2.ObjectMetricSourceType:
		fail := func(err error) (int32, string, autoscalingv2.HorizontalPodAutoscalerCondition, error) {
			return 0, "", c.unableToCompute(hpa, "FailedGetObjectMetric", err), fmt.Errorf("failed to get object metric value: %w", err)
		}
		src := spec.Object
		metricSelector, err := metav1.LabelSelectorAsSelector(src.Metric.Selector)
		if err != nil {
			return fail(err)
		}
		st := autoscalingv2.MetricStatus{Type: autoscalingv2.ObjectMetricSourceType, Object: &autoscalingv2.ObjectMetricStatus{
			DescribedObject: src.DescribedObject, Metric: autoscalingv2.MetricIdentifier{Name: src.Metric.Name, Selector: src.Metric.Selector}}}
		switch {
		case src.Target.Type == autoscalingv2.ValueMetricType && src.Target.Value != nil:
			r, usage, err := c.calc.objectReplicas(ctx, specReplicas, src.Target.Value.MilliValue(), src.Metric.Name, tol, ns, &src.DescribedObject, selector, metricSelector)
			if err != nil {
				return fail(err)
			}
			st.Object.Current.Value = resource.NewMilliQuantity(usage, resource.DecimalSI)
			*status = st
			return r, fmt.Sprintf("%s metric %s", src.DescribedObject.Kind, src.Metric.Name), none, nil
		case src.Target.Type == autoscalingv2.AverageValueMetricType && src.Target.AverageValue != nil:
			r, usage, _, err := c.calc.objectPerPodReplicas(ctx, statusReplicas, src.Target.AverageValue.MilliValue(), src.Metric.Name, tol, ns, &src.DescribedObject, metricSelector)
			if err != nil {
				return 0, "", c.unableToCompute(hpa, "FailedGetObjectMetric", err),
					fmt.Errorf("failed to get object metric value: %w", fmt.Errorf("failed to get %s object metric: %w", src.Metric.Name, err))
			}
			st.Object.Current.AverageValue = resource.NewMilliQuantity(usage, resource.DecimalSI)
			*status = st
			// Upstream names this one as an external metric too.
			return r, fmt.Sprintf("external metric %s(%+v)", src.Metric.Name, src.Metric.Selector), none, nil
		}
		return fail(errors.New("invalid object metric source: neither a value target nor an average value target was set"))

	case autoscalingv2.PodsMetricSourceType:
		src := spec.Pods
		metricSelector, err := metav1.LabelSelectorAsSelector(src.Metric.Selector)
		if err != nil {
			return 0, "", c.unableToCompute(hpa, "FailedGetPodsMetric", err), fmt.Errorf("failed to get pods metric value: %w", err)
		}
		var target int64
		if src.Target.AverageValue != nil {
			target = src.Target.AverageValue.MilliValue()
		}
		r, usage, _, err := c.calc.podsMetricReplicas(ctx, specReplicas, target, src.Metric.Name, tol, ns, selector, metricSelector)
		if err != nil {
			return 0, "", c.unableToCompute(hpa, "FailedGetPodsMetric", err), fmt.Errorf("failed to get pods metric value: %w", err)
		}
		*status = autoscalingv2.MetricStatus{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricStatus{
			Metric:  autoscalingv2.MetricIdentifier{Name: src.Metric.Name, Selector: src.Metric.Selector},
			Current: autoscalingv2.MetricValueStatus{AverageValue: resource.NewMilliQuantity(usage, resource.DecimalSI)}}}
		return r, fmt.Sprintf("pods metric %s", src.Metric.Name), none, nil

	case autoscalingv2.ResourceMetricSourceType:
		src := spec.Resource
		r, current, name, err := c.resourceMetric(ctx, hpa, specReplicas, src.Target, src.Name, "", selector, tol)
		if err != nil {
			return 0, "", c.unableToCompute(hpa, "FailedGetResourceMetric", err), fmt.Errorf("failed to get %s resource metric value: %w", src.Name, err)
		}
		*status = autoscalingv2.MetricStatus{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{Name: src.Name, Current: current}}
		return r, name, none, nil

	case autoscalingv2.ContainerResourceMetricSourceType:
		src := spec.ContainerResource
		r, current, name, err := c.resourceMetric(ctx, hpa, specReplicas, src.Target, src.Name, src.Container, selector, tol)
		if err != nil {
			return 0, "", c.unableToCompute(hpa, "FailedGetContainerResourceMetric", err), fmt.Errorf("failed to get %s container metric value: %w", src.Container, err)
		}
		*status = autoscalingv2.MetricStatus{Type: autoscalingv2.ContainerResourceMetricSourceType, ContainerResource: &autoscalingv2.ContainerResourceMetricStatus{
			Name: src.Name, Container: src.Container, Current: current}}
		return r, name, none, nil

	case autoscalingv2.ExternalMetricSourceType:
		src := spec.External
		st := autoscalingv2.MetricStatus{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricStatus{
			Metric: autoscalingv2.MetricIdentifier{Name: src.Metric.Name, Selector: src.Metric.Selector}}}
		// The condition and event carry the calculator's error; the returned one says more.
		fail := func(err, returned error) (int32, string, autoscalingv2.HorizontalPodAutoscalerCondition, error) {
			return 0, "", c.unableToCompute(hpa, "FailedGetExternalMetric", err), fmt.Errorf("failed to get %s external metric value: %w", src.Metric.Name, returned)
		}
		var r int32
		switch {
		case src.Target.AverageValue != nil:
			n, avg, _, err := c.calc.externalPerPodReplicas(ctx, statusReplicas, src.Target.AverageValue.MilliValue(), src.Metric.Name, tol, ns, src.Metric.Selector)
			if err != nil {
				return fail(err, fmt.Errorf("failed to get %s external metric: %w", src.Metric.Name, err))
			}
			r, st.External.Current.AverageValue = n, resource.NewMilliQuantity(avg, resource.DecimalSI)
		case src.Target.Value != nil:
			n, total, err := c.calc.externalReplicas(ctx, specReplicas, src.Target.Value.MilliValue(), src.Metric.Name, tol, ns, src.Metric.Selector, selector)
			if err != nil {
				return fail(err, fmt.Errorf("failed to get external metric %s: %w", src.Metric.Name, err))
			}
			r, st.External.Current.Value = n, resource.NewMilliQuantity(total, resource.DecimalSI)
		default:
			err := errors.New("invalid external metric source: neither a value target nor an average value target was set")
			return fail(err, err)
		}
		*status = st
		return r, fmt.Sprintf("external metric %s(%+v)", src.Metric.Name, src.Metric.Selector), none, nil
	}
	err := fmt.Errorf("unknown metric source type %q", string(spec.Type))
	return 0, "", c.unableToCompute(hpa, "InvalidMetricSourceType", err), err
}

// resourceMetric computes a Resource or ContainerResource metric: an average value target on
// the raw usage, or an average utilization target on the usage over the requests.
func (c *controller) resourceMetric(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler, current int32, target autoscalingv2.MetricTarget,
	name corev1.ResourceName, container string, selector labels.Selector, tol tolerances) (int32, autoscalingv2.MetricValueStatus, string, error) {
	if target.AverageValue != nil {
		r, usage, _, err := c.calc.rawResourceReplicas(ctx, current, target.AverageValue.MilliValue(), name, tol, hpa.Namespace, selector, container)
		if err != nil {
			return 0, autoscalingv2.MetricValueStatus{}, "", fmt.Errorf("failed to get %s usage: %w", name, err)
		}
		q := quantityOf(name, usage)
		return r, autoscalingv2.MetricValueStatus{AverageValue: &q}, fmt.Sprintf("%s resource", name), nil
	}
	if target.AverageUtilization == nil {
		return 0, autoscalingv2.MetricValueStatus{}, "", errors.New("invalid resource metric source: neither an average utilization target nor an average value (usage) target was set")
	}
	r, utilization, raw, _, err := c.calc.resourceReplicas(ctx, current, *target.AverageUtilization, name, tol, hpa.Namespace, selector, container)
	if err != nil {
		return 0, autoscalingv2.MetricValueStatus{}, "", fmt.Errorf("failed to get %s utilization: %w", name, err)
	}
	metric := fmt.Sprintf("%s resource utilization (percentage of request)", name)
	if container != "" {
		metric = fmt.Sprintf("%s container resource utilization (percentage of request)", name)
	}
	q := quantityOf(name, raw)
	return r, autoscalingv2.MetricValueStatus{AverageUtilization: &utilization, AverageValue: &q}, metric, nil
}

// quantityOf formats a milli-value as metrics-server does: memory in binary units, the rest
// in decimal.
func quantityOf(name corev1.ResourceName, milli int64) resource.Quantity {
	format := resource.DecimalSI
	if name == corev1.ResourceMemory {
		format = resource.BinarySI
	}
	return *resource.NewMilliQuantity(milli, format)
}

func hasObjectOrExternalMetrics(hpa *autoscalingv2.HorizontalPodAutoscaler) bool {
	for _, m := range hpa.Spec.Metrics {
		if m.Type == autoscalingv2.ObjectMetricSourceType || m.Type == autoscalingv2.ExternalMetricSourceType {
			return true
		}
	}
	return false
}

func conditionTrue(hpa *autoscalingv2.HorizontalPodAutoscaler, t autoscalingv2.HorizontalPodAutoscalerConditionType) bool {
	for _, c := range hpa.Status.Conditions {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// setCondition sets a condition, appending it if new; its transition time moves only when its
// status does.
func setCondition(hpa *autoscalingv2.HorizontalPodAutoscaler, t autoscalingv2.HorizontalPodAutoscalerConditionType, status corev1.ConditionStatus, reason, format string, args ...any) {
	conds := hpa.Status.Conditions
	i := 0
	for i < len(conds) && conds[i].Type != t {
		i++
	}
	if i == len(conds) {
		conds = append(conds, autoscalingv2.HorizontalPodAutoscalerCondition{Type: t})
	}
	if conds[i].Status != status {
		conds[i].LastTransitionTime = metav1.Now()
	}
	conds[i].Status, conds[i].Reason, conds[i].Message = status, reason, fmt.Sprintf(format, args...)
	hpa.Status.Conditions = conds
}
