package kubernetes

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kommo-import/kommo-import/cmd/kommo-import/cli"
)

// decodeStrict decodes one manifest into the API type its kind names,
// refusing any field the type does not have (a typo such as "parallelizm"
// or "podFailurePolicy.rule") and duplicate keys.
func decodeStrict(t *testing.T, doc []byte) any {
	t.Helper()
	var tm metav1.TypeMeta
	require.NoError(t, yaml.Unmarshal(doc, &tm))
	var obj any
	switch tm.APIVersion + "/" + tm.Kind {
	case "batch/v1/Job":
		obj = &batchv1.Job{}
	case "batch/v1/CronJob":
		obj = &batchv1.CronJob{}
	case "v1/Secret":
		obj = &corev1.Secret{}
	default:
		t.Fatalf("no API type for %s %s: add it to decodeStrict", tm.APIVersion, tm.Kind)
	}
	require.NoError(t, yaml.UnmarshalStrict(doc, obj))
	return obj
}

// manifests returns every document of every *.yaml here, by file.
func manifests(t *testing.T) map[string][]any {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	out := map[string][]any{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, doc := range bytes.Split(b, []byte("\n---")) {
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			t.Run(f, func(t *testing.T) { out[f] = append(out[f], decodeStrict(t, doc)) })
		}
	}
	return out
}

func TestManifestsDecodeStrictly(t *testing.T) {
	got := manifests(t)
	require.Len(t, got["job.yaml"], 1)
	require.Len(t, got["cronjob.yaml"], 1)
	require.Len(t, got["secret.example.yaml"], 1)
}

// TestAStrictDecoderCatchesATypo: the decoder refuses a misspelt field
// where a plain one would drop it without a word.
func TestAStrictDecoderCatchesATypo(t *testing.T) {
	b, err := os.ReadFile("job.yaml")
	require.NoError(t, err)
	typo := bytes.Replace(b, []byte("parallelism:"), []byte("paralelism:"), 1)
	require.Error(t, yaml.UnmarshalStrict(typo, &batchv1.Job{}))
	require.NoError(t, yaml.Unmarshal(typo, &batchv1.Job{}), "a lenient decoder would not notice")
}

// jobChecks holds what every Job of ours must say, whether it runs alone or
// from a CronJob.
func jobChecks(t *testing.T, spec batchv1.JobSpec, secretName string) {
	t.Helper()
	pod := spec.Template.Spec
	require.Equal(t, corev1.RestartPolicyNever, pod.RestartPolicy, "podFailurePolicy needs restartPolicy Never")
	require.Len(t, pod.Containers, 1)
	c := pod.Containers[0]
	require.Equal(t, "run", c.Args[0])

	// The exit codes as the importer defines them.
	require.NotNil(t, spec.PodFailurePolicy)
	action := map[int32]batchv1.PodFailurePolicyAction{}
	disruption := false
	for _, r := range spec.PodFailurePolicy.Rules {
		if r.OnExitCodes != nil {
			require.Equal(t, c.Name, *r.OnExitCodes.ContainerName)
			require.Equal(t, batchv1.PodFailurePolicyOnExitCodesOpIn, r.OnExitCodes.Operator)
			for _, v := range r.OnExitCodes.Values {
				action[v] = r.Action
			}
		}
		for _, p := range r.OnPodConditions {
			if p.Type == corev1.DisruptionTarget {
				disruption = r.Action == batchv1.PodFailurePolicyActionIgnore
			}
		}
	}
	require.Equal(t, map[int32]batchv1.PodFailurePolicyAction{
		cli.ExitFatal:       batchv1.PodFailurePolicyActionCount,
		cli.ExitUsage:       batchv1.PodFailurePolicyActionFailJob,
		cli.ExitIncomplete:  batchv1.PodFailurePolicyActionFailJob, // alerted on, as the README advises for systemd
		cli.ExitInterrupted: batchv1.PodFailurePolicyActionCount,   // retried: the run resumes
		cli.ExitOperator:    batchv1.PodFailurePolicyActionFailJob,
	}, action)
	require.True(t, disruption, "an evicted pod is retried without counting")
	require.NotNil(t, spec.BackoffLimit)

	// The settings from the Secret, never in the manifest.
	require.Len(t, c.EnvFrom, 1)
	require.Equal(t, secretName, c.EnvFrom[0].SecretRef.Name)
	for _, e := range c.Env {
		require.NotContains(t, []string{"DATABASE_URL", "KOMMO_CHANNEL_SECRET"}, e.Name, "a secret in the manifest")
	}
	for _, a := range c.Args {
		require.NotContains(t, a, "postgres://", "a database URL in the arguments")
	}

	// Requests from the measured memory, a limit above the peak.
	mem := c.Resources.Requests[corev1.ResourceMemory]
	require.False(t, mem.IsZero())
	limit := c.Resources.Limits[corev1.ResourceMemory]
	require.GreaterOrEqual(t, limit.Value(), int64(128<<20), "the measured peak RSS is 114 MB for a million messages")
	require.NotNil(t, pod.TerminationGracePeriodSeconds)
	require.GreaterOrEqual(t, *pod.TerminationGracePeriodSeconds, int64(35), "the soft stop finishes requests of up to 30 s")
}

func TestJobRunsOneImportOnTwoProcesses(t *testing.T) {
	got := manifests(t)
	secret := got["secret.example.yaml"][0].(*corev1.Secret)
	job := got["job.yaml"][0].(*batchv1.Job)
	require.EqualValues(t, 2, *job.Spec.Parallelism)
	require.Nil(t, job.Spec.Completions, "two workers of one run: the Job is done when one succeeds and both have ended")
	jobChecks(t, job.Spec, secret.Name)
	for _, k := range []string{"DATABASE_URL", "KOMMO_SCOPE_ID", "KOMMO_CHANNEL_SECRET"} {
		require.Contains(t, secret.StringData, k)
	}
}

func TestCronJobResyncsNightlyWithoutOverlap(t *testing.T) {
	got := manifests(t)
	secret := got["secret.example.yaml"][0].(*corev1.Secret)
	cj := got["cronjob.yaml"][0].(*batchv1.CronJob)
	require.Equal(t, batchv1.ForbidConcurrent, cj.Spec.ConcurrencyPolicy)
	require.NotEmpty(t, strings.Fields(cj.Spec.Schedule))
	jobChecks(t, cj.Spec.JobTemplate.Spec, secret.Name)
	require.True(t, slices.Contains(cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Args, "--source"))
}
