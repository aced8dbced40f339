// Package fakerules is a recording proxy.Rules for tests of the proxy: it
// keeps a deep copy of every RuleSet it is handed, can fail calls on
// demand, and writes nothing to the node. The real implementation is
// proxy/iptables.
//
//	f := fakerules.New()
//	p, _ := proxy.New(proxy.Config{Client: cs, Rules: f, NodeName: "node-a"})
//	go p.Run(ctx)
//	ports := f.Service(types.NamespacedName{Namespace: "default", Name: "web"})
package fakerules
