package worker

import (
	"k8s.io/client-go/tools/cache"
)

// Handlers are the event handlers a controller added to shared informers.
// The informer factory may outlive the controller, so Remove takes them
// off again when the controller stops. The zero value is ready to use.
type Handlers struct {
	regs   []registration
	synced []cache.InformerSynced
}

type registration struct {
	informer cache.SharedInformer
	reg      cache.ResourceEventHandlerRegistration
}

// Add registers h on informer. On error every handler added so far is
// removed, so a controller that fails to build leaves nothing behind.
func (hs *Handlers) Add(informer cache.SharedInformer, h cache.ResourceEventHandler) error {
	reg, err := informer.AddEventHandler(h)
	if err != nil {
		hs.Remove()
		return err
	}
	hs.regs = append(hs.regs, registration{informer, reg})
	hs.synced = append(hs.synced, informer.HasSynced, reg.HasSynced)
	return nil
}

// Synced is what cache.WaitForCacheSync needs: every informer's cache and
// every handler's delivery of the initial list.
func (hs *Handlers) Synced() []cache.InformerSynced { return hs.synced }

// Remove takes every handler off its informer.
func (hs *Handlers) Remove() {
	for _, r := range hs.regs {
		_ = r.informer.RemoveEventHandler(r.reg) // fails only once the informer has stopped
	}
	hs.regs, hs.synced = nil, nil
}

// On pairs an informer with the handler AddAll registers on it.
type On struct {
	Informer cache.SharedInformer
	Handler  cache.ResourceEventHandler
}

// AddAll is Add for each pair in turn, stopping at the first error.
func (hs *Handlers) AddAll(ons ...On) error {
	for _, o := range ons {
		if err := hs.Add(o.Informer, o.Handler); err != nil {
			return err
		}
	}
	return nil
}
