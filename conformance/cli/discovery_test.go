package cli

import (
	"encoding/json"
	"regexp"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

var _ = Describe("Discovery commands", func() {
	It("version reports the client and a v1.37 server", func(ctx SpecContext) {
		out := lines(kubectl(ctx, "version"))
		Expect(out).To(HaveLen(3), "%v", out)
		Expect(out[0]).To(MatchRegexp(`^Client Version: v1\.37\.\d+$`))
		Expect(out[1]).To(MatchRegexp(`^Kustomize Version: v\d+\.\d+\.\d+$`))
		Expect(out[2]).To(MatchRegexp(`^Server Version: v1\.37\.\d+`))

		var v struct {
			ClientVersion map[string]string `json:"clientVersion"`
			ServerVersion map[string]string `json:"serverVersion"`
		}
		Expect(json.Unmarshal([]byte(kubectl(ctx, "version", "-o", "json")), &v)).To(Succeed())
		Expect(v.ServerVersion).To(HaveKeyWithValue("major", "1"))
		Expect(v.ServerVersion).To(HaveKeyWithValue("minor", "37"))
		Expect(v.ServerVersion["gitVersion"]).To(HavePrefix("v1.37."))
		Expect(v.ServerVersion).To(HaveKeyWithValue("platform", MatchRegexp(`^\w+/\w+$`)))
		Expect(v.ServerVersion).To(HaveKeyWithValue("goVersion", HavePrefix("go1.")))
		Expect(v.ClientVersion).To(HaveKeyWithValue("gitVersion", HavePrefix("v1.37.")))

		Expect(kubectl(ctx, "version", "--client")).To(MatchRegexp(`^Client Version: v1\.37\.\d+\nKustomize Version: v[\d.]+\n$`))
	})

	It("api-versions lists the built-in group versions, sorted", func(ctx SpecContext) {
		out := lines(kubectl(ctx, "api-versions"))
		Expect(out).To(ContainElements(
			"v1", "apps/v1", "batch/v1", "autoscaling/v1", "autoscaling/v2", "policy/v1",
			"networking.k8s.io/v1", "rbac.authorization.k8s.io/v1", "storage.k8s.io/v1",
			"coordination.k8s.io/v1", "discovery.k8s.io/v1", "events.k8s.io/v1",
			"admissionregistration.k8s.io/v1", "apiextensions.k8s.io/v1", "apiregistration.k8s.io/v1",
			"authentication.k8s.io/v1", "authorization.k8s.io/v1", "certificates.k8s.io/v1",
			"flowcontrol.apiserver.k8s.io/v1", "node.k8s.io/v1", "scheduling.k8s.io/v1",
		))
		Expect(strings.Join(out, "\n")).NotTo(ContainSubstring(" "))
		// kubectl sorts what discovery gives it; duplicates would mean a group served twice.
		seen := map[string]bool{}
		for _, gv := range out {
			Expect(seen).NotTo(HaveKey(gv), "group version %s listed twice", gv)
			seen[gv] = true
		}
	})

	It("api-resources prints the resource table", func(ctx SpecContext) {
		out := kubectl(ctx, "api-resources")
		ls := lines(out)
		Expect(strings.Fields(ls[0])).To(Equal([]string{"NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"}))
		for _, want := range []string{
			`pods\s+po\s+v1\s+true\s+Pod`,
			`configmaps\s+cm\s+v1\s+true\s+ConfigMap`,
			`namespaces\s+ns\s+v1\s+false\s+Namespace`,
			`services\s+svc\s+v1\s+true\s+Service`,
			`secrets\s+v1\s+true\s+Secret`,
			`deployments\s+deploy\s+apps/v1\s+true\s+Deployment`,
			`replicasets\s+rs\s+apps/v1\s+true\s+ReplicaSet`,
			`jobs\s+batch/v1\s+true\s+Job`,
			`cronjobs\s+cj\s+batch/v1\s+true\s+CronJob`,
			`customresourcedefinitions\s+crd,crds\s+apiextensions.k8s.io/v1\s+false\s+CustomResourceDefinition`,
			`clusterroles\s+rbac.authorization.k8s.io/v1\s+false\s+ClusterRole`,
		} {
			Expect(out).To(MatchRegexp(`(?m)^`+want+`$`), "no row matching %q", want)
		}
		// The columns line up under their headings.
		header := ls[0]
		pods := ls[indexOfLine(ls, regexp.MustCompile(`^pods\s`))]
		Expect(strings.Index(pods, "po ")).To(Equal(strings.Index(header, "SHORTNAMES")), "\n%s\n%s", header, pods)
		Expect(strings.Index(pods, " v1 ")+1).To(Equal(strings.Index(header, "APIVERSION")), "\n%s\n%s", header, pods)
		Expect(strings.Index(pods, "true")).To(Equal(strings.Index(header, "NAMESPACED")), "\n%s\n%s", header, pods)
		Expect(strings.Index(pods, "Pod")).To(Equal(strings.Index(header, "KIND")), "\n%s\n%s", header, pods)

		wide := kubectl(ctx, "api-resources", "-o", "wide")
		Expect(strings.Fields(lines(wide)[0])).To(Equal([]string{"NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND", "VERBS", "CATEGORIES"}))
		Expect(wide).To(MatchRegexp(`(?m)^pods\s+po\s+v1\s+true\s+Pod\s+create,delete,deletecollection,get,list,patch,update,watch\s+all$`))
		Expect(wide).To(MatchRegexp(`(?m)^deployments\s+deploy\s+apps/v1\s+true\s+Deployment\s+create,delete,deletecollection,get,list,patch,update,watch\s+all$`))
	})

	It("api-resources --namespaced=false -o name lists only cluster-scoped resources", func(ctx SpecContext) {
		out := lines(kubectl(ctx, "api-resources", "--namespaced=false", "-o", "name"))
		Expect(out).To(ContainElements(
			"namespaces", "nodes", "persistentvolumes",
			"clusterroles.rbac.authorization.k8s.io", "clusterrolebindings.rbac.authorization.k8s.io",
			"storageclasses.storage.k8s.io", "customresourcedefinitions.apiextensions.k8s.io",
			"priorityclasses.scheduling.k8s.io",
		))
		Expect(out).NotTo(ContainElements("pods", "configmaps", "deployments.apps", "roles.rbac.authorization.k8s.io"))
		for _, name := range out {
			Expect(name).To(MatchRegexp(`^[a-z0-9]+(\.[a-z0-9.-]+)?$`))
		}
	})

	It("api-resources --api-group narrows to one group", func(ctx SpecContext) {
		out := lines(kubectl(ctx, "api-resources", "--api-group=apps", "-o", "name"))
		Expect(out).To(ConsistOf("controllerrevisions.apps", "daemonsets.apps", "deployments.apps", "replicasets.apps", "statefulsets.apps"))
	})

	It("cluster-info names the control plane", func(ctx SpecContext) {
		out := lines(kubectl(ctx, "cluster-info"))
		Expect(out).NotTo(BeEmpty())
		// kubectl colours the names only on a terminal; here the line is plain.
		Expect(out[0]).To(Equal("Kubernetes control plane is running at " + strings.TrimSuffix(testCluster.Config.Host, "/")))
		Expect(out[0]).To(HavePrefix("Kubernetes control plane is running at https://"))
		Expect(out[len(out)-1]).To(Equal("To further debug and diagnose cluster problems, use 'kubectl cluster-info dump'."))
	})
})

func indexOfLine(ls []string, re *regexp.Regexp) int {
	GinkgoHelper()
	for i, l := range ls {
		if re.MatchString(l) {
			return i
		}
	}
	Fail("no line matches " + re.String())
	return -1
}
