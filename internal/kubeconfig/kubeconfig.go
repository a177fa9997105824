// Package kubeconfig finds the Kubernetes client configuration every
// podkit component that speaks to the API uses (elect's kubernetes
// backend, discovery's kubernetes: source): an explicit kubeconfig file;
// without one, the pod's in-cluster configuration (its service account);
// outside a cluster, the files $KUBECONFIG lists.
package kubeconfig

import (
	"fmt"
	"os"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Load returns a copy of the client configuration, and the namespace the
// kubeconfig's current context names ("" in-cluster or when it names
// none). path "" means in-cluster, then $KUBECONFIG. Errors name the file
// or say that neither was found.
func Load(path string) (*rest.Config, string, error) {
	if path != "" {
		return load(&clientcmd.ClientConfigLoadingRules{ExplicitPath: path}, "kubeconfig "+path)
	}
	rc, inErr := rest.InClusterConfig()
	if inErr == nil {
		return rest.CopyConfig(rc), "", nil
	}
	env := os.Getenv(clientcmd.RecommendedConfigPathEnvVar)
	if env == "" {
		return nil, "", fmt.Errorf("not running in a cluster (%v) and $%s is not set: give a kubeconfig file", inErr, clientcmd.RecommendedConfigPathEnvVar)
	}
	var list []string
	for _, p := range strings.Split(env, string(os.PathListSeparator)) {
		if p != "" {
			list = append(list, p)
		}
	}
	return load(&clientcmd.ClientConfigLoadingRules{Precedence: list}, "$"+clientcmd.RecommendedConfigPathEnvVar+"="+env)
}

func load(rules *clientcmd.ClientConfigLoadingRules, what string) (*rest.Config, string, error) {
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	rc, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", what, err)
	}
	ns, _, _ := cc.Namespace()
	return rest.CopyConfig(rc), ns, nil
}
