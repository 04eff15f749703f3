package kubelet

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
)

// volumeDir is where a pod's volume of the given name lives on the host (for volumes the
// kubelet makes; hostPath and persistent volumes are elsewhere).
func (k *Kubelet) volumeDir(pod *corev1.Pod, name string) string {
	return filepath.Join(k.podDir(pod.UID), "volumes", name)
}

// syncVolumes makes the pod's volumes and brings the content of configMap, secret, downward
// API and projected volumes up to date, so that changes reach running containers.
func (k *Kubelet) syncVolumes(ctx context.Context, pod *corev1.Pod) error {
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		if err := k.syncVolume(ctx, pod, v); err != nil {
			return fmt.Errorf("MountVolume.SetUp failed for volume %q : %v", v.Name, err)
		}
	}
	return nil
}

func (k *Kubelet) syncVolume(ctx context.Context, pod *corev1.Pod, v *corev1.Volume) error {
	dir := k.volumeDir(pod, v.Name)
	fsGroup := (*int64)(nil)
	if pod.Spec.SecurityContext != nil {
		fsGroup = pod.Spec.SecurityContext.FSGroup
	}
	switch {
	case v.EmptyDir != nil:
		if _, err := os.Stat(dir); err == nil {
			return nil
		}
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return err
		}
		_ = os.Chmod(dir, 0o777)
		if v.EmptyDir.Medium == corev1.StorageMediumMemory {
			opts := ""
			if v.EmptyDir.SizeLimit != nil && !v.EmptyDir.SizeLimit.IsZero() {
				opts = "size=" + strconv.FormatInt(v.EmptyDir.SizeLimit.Value(), 10)
			}
			if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
				return err
			}
		}
		if fsGroup != nil {
			_ = os.Chown(dir, -1, int(*fsGroup))
			_ = os.Chmod(dir, 0o777|os.ModeSetgid)
		}
		return nil
	case v.HostPath != nil:
		return checkHostPath(v.HostPath.Path, ptr.Deref(v.HostPath.Type, corev1.HostPathUnset))
	case v.PersistentVolumeClaim != nil:
		_, err := k.claimPath(ctx, pod, v.PersistentVolumeClaim.ClaimName)
		return err
	}
	files, mode, err := k.volumeFiles(ctx, pod, v)
	if err != nil || files == nil {
		return err
	}
	return writeAtomically(dir, files, mode, fsGroup)
}

// volumeFile is one file of a configMap, secret, downward API or projected volume.
type volumeFile struct {
	data []byte
	mode *int32
}

// volumeFiles is the content of a volume the kubelet writes files for; nil for other kinds.
func (k *Kubelet) volumeFiles(ctx context.Context, pod *corev1.Pod, v *corev1.Volume) (map[string]volumeFile, int32, error) {
	switch {
	case v.ConfigMap != nil:
		files, err := k.configMapFiles(pod, v.ConfigMap.Name, v.ConfigMap.Items, ptr.Deref(v.ConfigMap.Optional, false))
		return files, ptr.Deref(v.ConfigMap.DefaultMode, corev1.ConfigMapVolumeSourceDefaultMode), err
	case v.Secret != nil:
		files, err := k.secretFiles(pod, v.Secret.SecretName, v.Secret.Items, ptr.Deref(v.Secret.Optional, false))
		return files, ptr.Deref(v.Secret.DefaultMode, corev1.SecretVolumeSourceDefaultMode), err
	case v.DownwardAPI != nil:
		files, err := k.downwardFiles(pod, v.DownwardAPI.Items)
		return files, ptr.Deref(v.DownwardAPI.DefaultMode, corev1.DownwardAPIVolumeSourceDefaultMode), err
	case v.Projected != nil:
		files := map[string]volumeFile{}
		for _, src := range v.Projected.Sources {
			var part map[string]volumeFile
			var err error
			switch {
			case src.ConfigMap != nil:
				part, err = k.configMapFiles(pod, src.ConfigMap.Name, src.ConfigMap.Items, ptr.Deref(src.ConfigMap.Optional, false))
			case src.Secret != nil:
				part, err = k.secretFiles(pod, src.Secret.Name, src.Secret.Items, ptr.Deref(src.Secret.Optional, false))
			case src.DownwardAPI != nil:
				part, err = k.downwardFiles(pod, src.DownwardAPI.Items)
			case src.ServiceAccountToken != nil:
				part, err = k.tokenFile(ctx, pod, src.ServiceAccountToken)
			case src.ClusterTrustBundle != nil:
				err = fmt.Errorf("clusterTrustBundle projections are not supported")
			}
			if err != nil {
				return nil, 0, err
			}
			for name, f := range part {
				files[name] = f
			}
		}
		return files, ptr.Deref(v.Projected.DefaultMode, corev1.ProjectedVolumeSourceDefaultMode), nil
	}
	return nil, 0, nil
}

func (k *Kubelet) configMapFiles(pod *corev1.Pod, name string, items []corev1.KeyToPath, optional bool) (map[string]volumeFile, error) {
	cm, err := k.configs.ConfigMaps(pod.Namespace).Get(name)
	if err != nil {
		if optional {
			return map[string]volumeFile{}, nil
		}
		return nil, fmt.Errorf("configmap %q not found", name)
	}
	data := map[string][]byte{}
	for key, v := range cm.Data {
		data[key] = []byte(v)
	}
	for key, v := range cm.BinaryData {
		data[key] = v
	}
	return pickItems(data, items, optional, "configmap", name)
}

func (k *Kubelet) secretFiles(pod *corev1.Pod, name string, items []corev1.KeyToPath, optional bool) (map[string]volumeFile, error) {
	s, err := k.secrets.Secrets(pod.Namespace).Get(name)
	if err != nil {
		if optional {
			return map[string]volumeFile{}, nil
		}
		return nil, fmt.Errorf("secret %q not found", name)
	}
	return pickItems(s.Data, items, optional, "secret", name)
}

// pickItems is all the keys as files, or just the items asked for, at their paths.
func pickItems(data map[string][]byte, items []corev1.KeyToPath, optional bool, kind, name string) (map[string]volumeFile, error) {
	files := map[string]volumeFile{}
	if len(items) == 0 {
		for key, v := range data {
			files[key] = volumeFile{data: v}
		}
		return files, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, fmt.Errorf("configmap references non-existent config key: %s", it.Key)
		}
		files[it.Path] = volumeFile{data: v, mode: it.Mode}
	}
	_ = kind
	_ = name
	return files, nil
}

func (k *Kubelet) downwardFiles(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile) (map[string]volumeFile, error) {
	files := map[string]volumeFile{}
	for _, it := range items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = podField(pod, it.FieldRef.FieldPath, podIPsOf(pod), pod.Status.HostIP)
		case it.ResourceFieldRef != nil:
			v, err = resourceField(pod, nil, it.ResourceFieldRef)
		}
		if err != nil {
			return nil, err
		}
		files[it.Path] = volumeFile{data: []byte(v), mode: it.Mode}
	}
	return files, nil
}

func podIPsOf(pod *corev1.Pod) []string {
	var ips []string
	for _, ip := range pod.Status.PodIPs {
		ips = append(ips, ip.IP)
	}
	return ips
}

// tokenFile is a projected service account token, requested for the pod and renewed when 80%
// of its life (or 24 hours) has passed, as upstream's token manager does.
func (k *Kubelet) tokenFile(ctx context.Context, pod *corev1.Pod, src *corev1.ServiceAccountTokenProjection) (map[string]volumeFile, error) {
	key := string(pod.UID) + "/" + src.Audience + "/" + src.Path
	k.tokensMu.Lock()
	cached, ok := k.tokens[key]
	k.tokensMu.Unlock()
	now := time.Now()
	if ok && now.Before(cached.renewAt) {
		return map[string]volumeFile{src.Path: {data: []byte(cached.token)}}, nil
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: src.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	resp, err := k.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("failed to fetch token: %w", err)
	}
	issued := now
	life := resp.Status.ExpirationTimestamp.Sub(issued)
	renew := issued.Add(min(life*8/10, 24*time.Hour))
	k.tokensMu.Lock()
	k.tokens[key] = cachedToken{token: resp.Status.Token, renewAt: renew}
	k.tokensMu.Unlock()
	return map[string]volumeFile{src.Path: {data: []byte(resp.Status.Token)}}, nil
}

// cachedToken is a service account token and when to renew it.
type cachedToken struct {
	token   string
	renewAt time.Time
}

// writeAtomically writes the files under dir as upstream's atomic writer does: into a new
// timestamped directory, which the ..data symlink then points to, with each file a symlink
// through ..data; a reader never sees half an update.
func writeAtomically(dir string, files map[string]volumeFile, defaultMode int32, fsGroup *int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	dataLink := filepath.Join(dir, "..data")
	if current, err := os.Readlink(dataLink); err == nil && sameContent(filepath.Join(dir, current), files, defaultMode) {
		return nil
	}
	stamp := "..20" + time.Now().UTC().Format("06_01_02_15_04_05.000000000")
	tsDir := filepath.Join(dir, stamp)
	if err := os.MkdirAll(tsDir, 0o755); err != nil {
		return err
	}
	for name, f := range files {
		path := filepath.Join(tsDir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(ptr.Deref(f.mode, defaultMode) & 0o777)
		if err := os.WriteFile(path, f.data, mode); err != nil {
			return err
		}
		_ = os.Chmod(path, mode)
		if fsGroup != nil {
			_ = os.Chown(path, -1, int(*fsGroup))
		}
	}
	old, _ := os.Readlink(dataLink)
	tmpLink := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmpLink)
	if err := os.Symlink(stamp, tmpLink); err != nil {
		return err
	}
	if err := os.Rename(tmpLink, dataLink); err != nil {
		return err
	}
	// Top-level names point through ..data; names no longer present go.
	top := map[string]bool{}
	for name := range files {
		first, _, _ := strings.Cut(name, "/")
		top[first] = true
	}
	for name := range top {
		link := filepath.Join(dir, name)
		if target, err := os.Readlink(link); err == nil && target == filepath.Join("..data", name) {
			continue
		}
		_ = os.RemoveAll(link)
		if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
			return err
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "..") && !top[e.Name()] {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
	if old != "" && old != stamp {
		_ = os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}

// sameContent tells whether dir holds exactly files with their modes.
func sameContent(dir string, files map[string]volumeFile, defaultMode int32) bool {
	var found []string
	_ = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			found = append(found, rel)
		}
		return nil
	})
	if len(found) != len(files) {
		return false
	}
	sort.Strings(found)
	for _, name := range found {
		f, ok := files[name]
		if !ok {
			return false
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(b, f.data) {
			return false
		}
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Mode().Perm() != os.FileMode(ptr.Deref(f.mode, defaultMode)&0o777) {
			return false
		}
	}
	return true
}

// claimPath is the host path of the volume bound to a claim: hostPath and local volumes only.
func (k *Kubelet) claimPath(ctx context.Context, pod *corev1.Pod, claim string) (string, error) {
	pvc, err := k.client.CoreV1().PersistentVolumeClaims(pod.Namespace).Get(ctx, claim, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if pvc.Spec.VolumeName == "" || pvc.Status.Phase != corev1.ClaimBound {
		return "", fmt.Errorf("persistentvolumeclaim %q is not bound", claim)
	}
	pv, err := k.client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	switch {
	case pv.Spec.HostPath != nil:
		if err := os.MkdirAll(pv.Spec.HostPath.Path, 0o777); err != nil {
			return "", err
		}
		return pv.Spec.HostPath.Path, nil
	case pv.Spec.Local != nil:
		return pv.Spec.Local.Path, nil
	}
	return "", fmt.Errorf("persistentvolume %q is of a kind this node cannot mount", pv.Name)
}

// containerMounts are the container's volume mounts, its /etc/hosts and termination log.
func (k *Kubelet) containerMounts(pod *corev1.Pod, c *corev1.Container) ([]*runtimeapi.Mount, error) {
	byName := map[string]*corev1.Volume{}
	for i := range pod.Spec.Volumes {
		byName[pod.Spec.Volumes[i].Name] = &pod.Spec.Volumes[i]
	}
	var mounts []*runtimeapi.Mount
	hasHosts := false
	for _, vm := range c.VolumeMounts {
		v, ok := byName[vm.Name]
		if !ok {
			return nil, fmt.Errorf("cannot find volume %q to mount into container %q", vm.Name, c.Name)
		}
		hostPath := k.volumeDir(pod, v.Name)
		readOnly := vm.ReadOnly
		switch {
		case v.HostPath != nil:
			hostPath = v.HostPath.Path
		case v.PersistentVolumeClaim != nil:
			p, err := k.claimPath(context.Background(), pod, v.PersistentVolumeClaim.ClaimName)
			if err != nil {
				return nil, err
			}
			hostPath = p
			readOnly = readOnly || v.PersistentVolumeClaim.ReadOnly
		case v.ConfigMap != nil, v.Secret != nil, v.DownwardAPI != nil, v.Projected != nil:
			readOnly = true
		}
		if vm.SubPath != "" || vm.SubPathExpr != "" {
			sub := vm.SubPath
			if vm.SubPathExpr != "" {
				vars := map[string]string{}
				for _, e := range c.Env {
					if e.ValueFrom == nil {
						vars[e.Name] = e.Value
					} else if e.ValueFrom.FieldRef != nil {
						vars[e.Name], _ = podField(pod, e.ValueFrom.FieldRef.FieldPath, podIPsOf(pod), k.opts.NodeIP.String())
					}
				}
				sub = expandVars(vm.SubPathExpr, vars)
			}
			if strings.Contains(sub, "..") {
				return nil, fmt.Errorf("subPath %q must not contain '..'", sub)
			}
			hostPath = filepath.Join(hostPath, sub)
			if _, err := os.Stat(hostPath); os.IsNotExist(err) {
				if err := os.MkdirAll(hostPath, 0o777); err != nil {
					return nil, err
				}
			}
		}
		if vm.MountPath == "/etc/hosts" {
			hasHosts = true
		}
		m := &runtimeapi.Mount{ContainerPath: vm.MountPath, HostPath: hostPath, Readonly: readOnly, SelinuxRelabel: false}
		if vm.MountPropagation != nil {
			switch *vm.MountPropagation {
			case corev1.MountPropagationHostToContainer:
				m.Propagation = runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
			case corev1.MountPropagationBidirectional:
				m.Propagation = runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
			}
		}
		mounts = append(mounts, m)
	}
	if !hasHosts && !pod.Spec.HostNetwork {
		mounts = append(mounts, &runtimeapi.Mount{ContainerPath: "/etc/hosts", HostPath: filepath.Join(k.podDir(pod.UID), "etc-hosts")})
	}
	if c.TerminationMessagePath != "" {
		path := k.terminationLogPath(pod, c.Name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o666)
		if err != nil {
			return nil, err
		}
		_ = f.Close()
		_ = os.Chmod(path, 0o666)
		mounts = append(mounts, &runtimeapi.Mount{ContainerPath: c.TerminationMessagePath, HostPath: path})
	}
	return mounts, nil
}

// terminationLogPath is the host file behind a container's termination message path.
func (k *Kubelet) terminationLogPath(pod *corev1.Pod, container string) string {
	return filepath.Join(k.podDir(pod.UID), "containers", container, "termination-log")
}

// unmountAll unmounts the tmpfs volumes under a pod's directory before it is removed.
func unmountAll(podDir string) {
	entries, err := os.ReadDir(filepath.Join(podDir, "volumes"))
	if err != nil {
		return
	}
	for _, e := range entries {
		_ = syscall.Unmount(filepath.Join(podDir, "volumes", e.Name()), syscall.MNT_DETACH)
	}
}

// checkHostPath makes a hostPath volume's path for the OrCreate types and checks that it is of
// the volume's type, with upstream's messages.
func checkHostPath(path string, t corev1.HostPathType) error {
	_, statErr := os.Stat(path)
	missing := os.IsNotExist(statErr)
	var expected string
	switch t {
	case corev1.HostPathUnset:
		return nil
	case corev1.HostPathDirectoryOrCreate:
		if missing {
			return os.MkdirAll(path, 0o755)
		}
		t, expected = corev1.HostPathDirectory, "directory"
	case corev1.HostPathDirectory:
		expected = "directory"
	case corev1.HostPathFileOrCreate:
		if missing {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(path, os.O_CREATE, 0o644)
			if err != nil {
				return err
			}
			return f.Close()
		}
		t, expected = corev1.HostPathFile, "file"
	case corev1.HostPathFile:
		expected = "file"
	case corev1.HostPathSocket:
		expected = "socket file"
	case corev1.HostPathCharDev:
		expected = "character device"
	case corev1.HostPathBlockDev:
		expected = "block device"
	default:
		return fmt.Errorf("%s is an invalid volume type", t)
	}
	actual, err := hostPathTypeOf(path)
	if err != nil {
		return fmt.Errorf("hostPath type check failed, %s is not a %s, unable to determine its type: %w", path, expected, err)
	}
	if actual != t {
		return fmt.Errorf("hostPath type check failed: %s is not a %s, it's a %s", path, expected, actual)
	}
	return nil
}

// hostPathTypeOf is what a path is, as a hostPath type.
func hostPathTypeOf(path string) (corev1.HostPathType, error) {
	st, err := os.Stat(path)
	if os.IsNotExist(err) {
		return "", fmt.Errorf("path %q does not exist", path)
	}
	if err != nil {
		return "", err
	}
	switch m := st.Mode(); {
	case m&os.ModeSocket != 0:
		return corev1.HostPathSocket, nil
	case m&os.ModeCharDevice != 0:
		return corev1.HostPathCharDev, nil
	case m&os.ModeDevice != 0:
		return corev1.HostPathBlockDev, nil
	case m.IsDir():
		return corev1.HostPathDirectory, nil
	case m.IsRegular():
		return corev1.HostPathFile, nil
	}
	return "", fmt.Errorf("only recognise file, directory, socket, block device and character device")
}
